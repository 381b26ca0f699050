// amqplib scenario for warren's interop tests: node scenario.js <amqp-url> <name-prefix>
// Prints one JSON object with what the client observed (interop/test_amqplib.py checks it).
'use strict';
const amqp = require('amqplib');

const url = process.argv[2];
const p = process.argv[3] || 'it-amqplib';
const REPLY_TO = 'amq.rabbitmq.reply-to';
const TIMEOUT = 10000;

function waitFor(cond, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + TIMEOUT;
    const tick = () => {
      const v = cond();
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error('timed out waiting for ' + what));
      setTimeout(tick, 5);
    };
    tick();
  });
}

// Run action(ch) on a fresh channel; return [code, classId, methodId, message] of the broker's close.
async function closedByBroker(conn, action) {
  const ch = await conn.createChannel();
  let err = null;
  let closed = false;
  ch.on('error', (e) => { err = e; });
  ch.on('close', () => { closed = true; });
  try {
    await action(ch);
  } catch (e) {
    err = err || e;
  }
  if (!err) return ['not closed'];
  await waitFor(() => closed, 'channel close');
  return [err.code, err.classId, err.methodId, err.message];
}

function delivery(m) {
  return {
    body: m.content.toString(),
    tag: m.fields.deliveryTag,
    redelivered: m.fields.redelivered,
    exchange: m.fields.exchange,
    routingKey: m.fields.routingKey,
    headers: m.properties.headers,
    messageId: m.properties.messageId,
    contentType: m.properties.contentType,
    deliveryMode: m.properties.deliveryMode,
    priority: m.properties.priority === undefined ? null : m.properties.priority,
  };
}

async function main() {
  const obs = {};
  const conn = await amqp.connect(url);
  conn.on('error', (e) => { obs.connection_error = String(e); });
  try {
    const ch = await conn.createConfirmChannel();
    await ch.assertExchange(`${p}.fx`, 'fanout', { durable: false });
    const q = await ch.assertQueue(`${p}.q`, { durable: false });
    obs.assert_queue = [q.queue, q.messageCount, q.consumerCount];
    await ch.bindQueue(`${p}.q`, `${p}.fx`, '');

    for (let i = 0; i < 3; i++) {
      ch.publish(`${p}.fx`, `k${i}`, Buffer.from(`msg-${i}`), {
        headers: { n: i, s: 'str', arr: [1, 'a', true], obj: { x: 1 } },
        messageId: `id${i}`, contentType: 'text/plain', persistent: true, priority: i,
      });
    }
    await ch.waitForConfirms();
    obs.confirmed = true;

    const returned = [];
    ch.on('return', (m) => returned.push([m.fields.replyCode, m.fields.replyText, m.fields.exchange,
      m.fields.routingKey, m.content.toString()]));
    await new Promise((resolve, reject) => ch.publish('', `${p}.nothing`, Buffer.from('lost'),
      { mandatory: true }, (err) => (err ? reject(err) : resolve())));
    await waitFor(() => returned.length, 'basic.return');
    obs.returned = returned;
    const cq = await ch.checkQueue(`${p}.q`);
    obs.check_queue = [cq.messageCount, cq.consumerCount];

    // consume, ack, nack(requeue)
    const cch = await conn.createChannel();
    await cch.prefetch(10);
    const got = [];
    const ok = await cch.consume(`${p}.q`, (m) => got.push(m));
    await waitFor(() => got.length >= 3, '3 deliveries');
    cch.ack(got[0]);
    cch.nack(got[1], false, true);
    await waitFor(() => got.length >= 4, 'the redelivery');
    cch.ack(got[3], true);
    obs.deliveries = got.map(delivery);
    obs.consumer_tags_match = got.every((m) => m.fields.consumerTag === ok.consumerTag);
    const after = await ch.checkQueue(`${p}.q`);
    obs.after_acks = [after.messageCount, after.consumerCount];
    await cch.cancel(ok.consumerTag);
    const after2 = await ch.checkQueue(`${p}.q`);
    obs.after_cancel = [after2.messageCount, after2.consumerCount];

    // basic.get
    ch.sendToQueue(`${p}.q`, Buffer.from('g1'));
    ch.sendToQueue(`${p}.q`, Buffer.from('g2'));
    await ch.waitForConfirms();
    let m = await ch.get(`${p}.q`);
    obs.get1 = [m.content.toString(), m.fields.redelivered, m.fields.messageCount];
    ch.nack(m, false, true);
    m = await ch.get(`${p}.q`, { noAck: true });
    obs.get2 = [m.content.toString(), m.fields.redelivered, m.fields.messageCount];
    m = await ch.get(`${p}.q`);
    obs.get3 = [m.content.toString(), m.fields.redelivered, m.fields.messageCount];
    ch.ack(m);
    obs.get_empty = await ch.get(`${p}.q`);

    // RPC over direct reply-to
    await ch.assertQueue(`${p}.rpc`, { autoDelete: true, durable: false });
    const sch = await conn.createChannel();
    const requests = [];
    await sch.consume(`${p}.rpc`, (req) => {
      requests.push([req.content.toString(), req.properties.replyTo, req.properties.correlationId]);
      sch.sendToQueue(req.properties.replyTo, Buffer.from('pong:' + req.content.toString()),
        { correlationId: req.properties.correlationId });
    }, { noAck: true });
    const rch = await conn.createChannel();
    const replies = [];
    await rch.consume(REPLY_TO, (r) => replies.push(r), { noAck: true });
    rch.sendToQueue(`${p}.rpc`, Buffer.from('ping'), { replyTo: REPLY_TO, correlationId: 'n-1' });
    await waitFor(() => replies.length, 'rpc reply');
    const r = replies[0];
    obs.rpc_request = requests;
    obs.rpc_reply = [r.content.toString(), r.properties.correlationId, r.fields.redelivered,
      r.fields.exchange, r.fields.routingKey];

    // error cases
    obs.err_check_missing = await closedByBroker(conn, (c) => c.checkQueue(`${p}.missing`));
    obs.err_inequivalent_queue = await closedByBroker(conn, (c) => c.assertQueue(`${p}.q`, { durable: true }));
    obs.err_inequivalent_exchange = await closedByBroker(conn,
      (c) => c.assertExchange(`${p}.fx`, 'fanout', { durable: false, autoDelete: true }));
    obs.err_unknown_tag = await closedByBroker(conn, async (c) => {
      c.ack({ fields: { deliveryTag: 99 } });
      await c.checkQueue(`${p}.q`);
    });
    obs.err_consume_missing = await closedByBroker(conn, (c) => c.consume(`${p}.missing`, () => {}));
    ch.sendToQueue(`${p}.q`, Buffer.from('keep'));
    await ch.waitForConfirms();
    obs.err_delete_not_empty = await closedByBroker(conn, (c) => c.deleteQueue(`${p}.q`, { ifEmpty: true }));
    obs.err_bind_missing_exchange = await closedByBroker(conn, (c) => c.bindQueue(`${p}.q`, `${p}.nox`, ''));

    const del = await ch.deleteQueue(`${p}.q`);
    obs.queue_delete = del.messageCount;
    await ch.deleteExchange(`${p}.fx`);
    await ch.close();
  } finally {
    await conn.close();
  }
  return obs;
}

const killer = setTimeout(() => {
  process.stdout.write(JSON.stringify({ fatal: 'scenario timed out' }) + '\n');
  process.exit(2);
}, 25000);

main().then((obs) => {
  clearTimeout(killer);
  process.stdout.write(JSON.stringify(obs) + '\n');
}, (err) => {
  clearTimeout(killer);
  process.stdout.write(JSON.stringify({ fatal: String(err && err.stack || err) }) + '\n');
  process.exitCode = 1;
});
