// @cloudamqp/amqp-client scenario for warren's interop tests:
//   node cloudamqp.js <amqp(s)-url> <name-prefix>
// Prints one JSON object with what the client observed (interop/test_cloudamqp.py checks it).
// The client reads Channel.OpenOk as RabbitMQ encodes it and drops the connection when
// nothing arrives for one heartbeat interval (its socket timeout), so it checks both.
'use strict';
const { AMQPClient } = require('@cloudamqp/amqp-client');

const url = process.argv[2];
const p = process.argv[3] || 'it-cloudamqp';
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

function within(promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error('timed out: ' + what)), TIMEOUT)),
  ]);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const obs = {};
  const sep = url.includes('?') ? '&' : '?';
  const conn = new AMQPClient(`${url}${sep}heartbeat=1&name=${encodeURIComponent(p)}`);
  const errors = [];  // everything the client reports through onerror
  conn.onerror = (err) => { errors.push(String(err && err.message)); };
  await within(conn.connect(), 'connect');
  obs.heartbeat = conn.heartbeat;

  // channels
  const ch = await conn.channel();
  const ch2 = await conn.channel();
  obs.channel_ids = [ch.id, ch2.id];

  // declare
  const x = `${p}.x`;
  const q = `${p}.q`;
  await ch.exchangeDeclare(x, 'direct', { autoDelete: false });
  const qok = await ch.queueDeclare(q, { durable: false });
  obs.queue_declare = [qok.name, qok.messageCount, qok.consumerCount];
  await ch.queueBind(q, x, 'k');
  const odd = await ch.queueDeclare(`${p}.jobs!|café`, { exclusive: true });
  obs.odd_queue = odd.name;

  // publish with confirms (basicPublish resolves with the confirmed delivery tag)
  await ch.confirmSelect();
  const tags = [];
  for (let i = 0; i < 3; i++) {
    tags.push(await within(ch.basicPublish(x, 'k', `msg-${i}`, { messageId: `id${i}`, deliveryMode: 2 }), 'confirm'));
  }
  obs.confirm_tags = tags;
  const returned = [];
  ch.onReturn = (m) => returned.push([m.replyCode, m.replyText, m.exchange, m.routingKey, m.bodyToString()]);
  obs.unroutable_tag = await within(ch.basicPublish(x, 'nowhere', 'lost', {}, true), 'confirm of a return');
  await waitFor(() => returned.length === 1, 'basic.return');
  obs.returned = returned;

  // consume with ack / nack (msg-1 is nacked with requeue once, then acked)
  const deliveries = [];
  let nacked = false;
  const consumer = await ch2.basicConsume(q, { noAck: false }, async (m) => {
    deliveries.push([m.bodyToString(), m.deliveryTag, m.redelivered, m.routingKey, m.exchange]);
    if (m.bodyToString() === 'msg-1' && !nacked) {
      nacked = true;
      await m.nack(true);
    } else {
      await m.ack();
    }
  });
  obs.consumer_tag_generated = consumer.tag.startsWith('amq.ctag-');
  await waitFor(() => deliveries.length === 4, 'four deliveries');
  obs.deliveries = deliveries;
  await consumer.cancel();
  const after = await ch.queueDeclare(q, { passive: true });
  obs.after_acks = [after.messageCount, after.consumerCount];

  // heartbeats: 1 s negotiated, 3 s of silence from the application; the client's socket
  // timeout is the heartbeat, so a broker gap of a whole interval would drop it
  await sleep(3000);
  obs.after_idle = { errors: errors.slice(), closed: conn.closed };
  const again = await ch.queueDeclare(q, { passive: true });
  obs.after_idle_roundtrip = again.messageCount;

  // update-secret (OAuth 2 token refresh); RabbitMQ's internal users accept any secret
  await within(conn.updateSecret('guest', 'token refresh'), 'update-secret-ok');
  await within(conn.updateSecret('a new token', 'token refresh'), 'update-secret-ok');
  obs.update_secret = 'ok';
  const afterSecret = await ch.queueDeclare(q, { passive: true });
  obs.after_update_secret = afterSecret.messageCount;

  // a channel error: publish to a missing exchange on a confirm channel
  const ch3 = await conn.channel();
  await ch3.confirmSelect();
  try {
    await within(ch3.basicPublish(`${p}.none`, 'k', 'x'), 'channel close');
    obs.publish_missing = 'not closed';
  } catch (e) {
    obs.publish_missing = String(e.message);
  }
  obs.ch3_closed = ch3.closed;

  // get, delete, close
  await ch.basicPublish(x, 'k', 'g1');
  const got = await ch.basicGet(q, { noAck: true });
  obs.get = got ? [got.bodyToString(), got.messageCount, got.redelivered] : null;
  obs.get_empty = (await ch.basicGet(q)) === null;
  obs.queue_delete = (await ch.queueDelete(q)).messageCount;
  await ch.exchangeDelete(x);
  await ch2.close();
  await ch.close();
  obs.channels_closed = [ch.closed, ch2.closed];
  await conn.close();
  obs.connection_closed = conn.closed;
  obs.errors = errors;
  return obs;
}

main().then(
  (obs) => { console.log(JSON.stringify(obs)); process.exit(0); },
  (err) => { console.log(JSON.stringify({ fatal: String(err && err.stack || err) })); process.exit(1); },
);
