// amqplib: connection.update-secret, the ids of a hot-path channel error and names outside
// pamqp's pattern. node amqplib_compat.js <amqp-url> <name-prefix>; prints one JSON object
// (interop/test_amqplib_compat.py checks it, against warren and RabbitMQ).
'use strict';
const amqp = require('amqplib');

const url = process.argv[2];
const p = process.argv[3] || 'it-amqplib-compat';
const TIMEOUT = 10000;

function within(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), TIMEOUT)),
  ]);
}

// Run action(ch) on a fresh channel; [code, classId, methodId, message] of the broker's close.
async function closedByBroker(conn, action) {
  const ch = await conn.createChannel();
  const closed = new Promise((resolve) => ch.on('close', resolve));
  let err = null;
  ch.on('error', (e) => { err = e; });
  try {
    await action(ch);
  } catch (e) {
    err = err || e;
  }
  await within(closed, 'channel close');
  return err ? [err.code, err.classId, err.methodId, err.message] : ['not closed'];
}

async function main() {
  const obs = {};
  const conn = await within(amqp.connect(url), 'connect');
  let connError = null;
  conn.on('error', (e) => { connError = String(e.message); });

  // amqplib's own suite: updateSecret with an arbitrary secret must succeed
  await within(conn.updateSecret(Buffer.from('new secret'), 'no reason'), 'update-secret-ok');
  await within(conn.updateSecret(Buffer.from('guest'), 'token refresh'), 'update-secret-ok');
  obs.update_secret = 'ok';

  // a publish to a missing exchange fails Basic.Publish (60/40)
  obs.publish_missing = await closedByBroker(conn, async (ch) => {
    ch.publish(`${p}.none`, 'k', Buffer.from('x'));
  });
  // an ack of an unknown tag fails Basic.Ack (60/80)
  obs.ack_unknown = await closedByBroker(conn, async (ch) => {
    ch.ack({ fields: { deliveryTag: 99 } });
  });

  // names outside pamqp's pattern
  const ch = await conn.createConfirmChannel();
  const names = ['jobs!', 'café', 'a|b'];
  obs.names = [];
  for (const n of names) {
    const q = `${p}.${n}`;
    const x = `${p}.${n}.x`;
    const ok = await ch.assertQueue(q, { durable: false });
    await ch.assertExchange(x, 'direct', { durable: false });
    await ch.bindQueue(q, x, n);
    const returned = new Promise((resolve) => ch.once('return', (m) => resolve(
      [m.fields.replyCode, m.fields.replyText, m.fields.exchange, m.fields.routingKey])));
    ch.publish(x, 'nowhere', Buffer.from('r'), { mandatory: true });
    ch.publish(x, n, Buffer.from('m'));
    await within(ch.waitForConfirms(), 'confirms');
    const got = await ch.get(q, { noAck: true });
    let delivered;
    const consumed = new Promise((resolve) => { delivered = resolve; });
    const cons = await ch.consume(q, (m) => delivered([m.fields.consumerTag, m.fields.exchange]), { consumerTag: n, noAck: true });
    ch.publish(x, n, Buffer.from('c'));
    obs.names.push({
      declare: ok.queue,
      returned: await within(returned, 'return'),
      get: [got.content.toString(), got.fields.exchange, got.fields.routingKey],
      consume_ok: cons.consumerTag,
      deliver: await within(consumed, 'delivery'),
    });
    await ch.cancel(n);
    await ch.deleteQueue(q);
    await ch.deleteExchange(x);
  }
  await ch.close();
  await conn.close();
  obs.connection_error = connError;
  return obs;
}

main().then(
  (obs) => { console.log(JSON.stringify(obs)); process.exit(0); },
  (err) => { console.log(JSON.stringify({ fatal: String(err && err.stack || err) })); process.exit(1); },
);
