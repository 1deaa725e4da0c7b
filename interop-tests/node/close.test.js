'use strict';
// amqplib (Node) closing a connection that still has frames in flight.
//
//   cd interop-tests/node && npm ci && AMQP_URL=amqp://guest:guest@localhost:5672/%2F node --test
//
// amqplib queues connection.close (and close-ok) on channel 0 and keeps writing the publishes
// buffered on its other channels behind it. RabbitMQ 3.10.8 reads and discards them until the
// client closes its side (or, after its own connection.close, until close-ok), so the client
// always gets its close-ok. A broker that drops the socket with those frames unread resets the
// connection: the client sees EPIPE or ECONNRESET before close-ok, and amqplib's close callback
// is never called. RabbitMQ closes with a reset too, but only once the client is done (in answer
// to its FIN, or to its close-ok): socket errors after that point are not failures.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const amqpCallback = require('amqplib/callback_api');
const amqp = require('amqplib');

const AMQP_URL = process.env.AMQP_URL || 'amqp://guest:guest@localhost:5672/%2F';
// Bound on every wait for an event: a hang fails the test instead of hanging the run.
const WAIT = 10000;
const ATTEMPTS = 20;
const BODY = Buffer.alloc(1024, 'p');

function within(what, promise, details) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT} ms (${details()})`)), WAIT);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Records the connection's and channels' error events, and the socket's errors with whether the
// client was done (close-ok received, or the broker's connection.close answered) when they came.
function watch(model) {
  const w = { connectionErrors: [], channelErrors: [], socketErrors: [], done: false, sent: 0 };
  model.on('error', (e) => w.connectionErrors.push(e.message));
  const socket = model.connection.stream;
  w.socket = socket;
  // Ahead of amqplib's own listener, which closes the connection (and so would mark it done).
  socket.prependListener('error', (e) =>
    w.socketErrors.push({ code: e.code, message: e.message, afterClientDone: w.done }),
  );
  w.socketClosed = new Promise((resolve) => socket.once('close', resolve));
  w.watchChannel = (ch) => ch.on('error', (e) => w.channelErrors.push(e.message));
  w.details = () =>
    `publishes buffered: ${w.sent}; connection errors: ${JSON.stringify(w.connectionErrors)}; ` +
    `channel errors: ${JSON.stringify(w.channelErrors)}; socket errors: ${JSON.stringify(w.socketErrors)}`;
  w.socketErrorsBeforeDone = () => w.socketErrors.filter((e) => !e.afterClientDone);
  return w;
}

// Publishes until amqplib's channel buffer is full: everything stays buffered in the client until
// the event loop runs, after the caller's close.
function fill(ch, queue, w) {
  while (ch.sendToQueue(queue, BODY)) {
    w.sent++;
    assert.ok(w.sent < 1000000, 'sendToQueue never reported a full buffer');
  }
  w.sent++;
  assert.ok(w.sent >= 500, `only ${w.sent} publishes buffered`);
}

function cb(fn) {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));
}

async function clientCloseAttempt(attempt, open) {
  const { model, ch, queue } = await open();
  const w = model.w;
  try {
    fill(ch, queue, w);
    await within(`attempt ${attempt}: close`, model.closeNow(w), w.details);
    assert.deepEqual(w.socketErrorsBeforeDone(), [], `attempt ${attempt}: socket errors before close-ok`);
    assert.deepEqual(w.connectionErrors, [], `attempt ${attempt}: connection errors`);
    assert.deepEqual(w.channelErrors, [], `attempt ${attempt}: channel errors`);
    // The broker then closes the connection (RabbitMQ at once, in answer to the client's FIN).
    await within(`attempt ${attempt}: socket closed after close-ok`, w.socketClosed, w.details);
  } finally {
    w.socket.destroy();
  }
}

test('callback API: close right after filling the channel buffer gets close-ok', { timeout: 120000 }, async () => {
  const open = async () => {
    const model = await cb((k) => amqpCallback.connect(AMQP_URL, k));
    model.w = watch(model);
    const ch = await cb((k) => model.createChannel(k));
    model.w.watchChannel(ch);
    const ok = await cb((k) => ch.assertQueue('', { exclusive: true }, k));
    // The close callback gets null once close-ok has been received.
    model.closeNow = (w) =>
      new Promise((resolve, reject) =>
        model.close((err) => {
          w.done = true;
          if (err) reject(err);
          else resolve();
        }),
      );
    return { model, ch, queue: ok.queue };
  };
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    await clientCloseAttempt(attempt, open);
  }
});

test('promise API: close right after filling the channel buffer resolves', { timeout: 120000 }, async () => {
  const open = async () => {
    const model = await amqp.connect(AMQP_URL);
    model.w = watch(model);
    const ch = await model.createChannel();
    model.w.watchChannel(ch);
    const ok = await ch.assertQueue('', { exclusive: true });
    model.closeNow = (w) =>
      model.close().then(() => {
        w.done = true;
      });
    return { model, ch, queue: ok.queue };
  };
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    await clientCloseAttempt(attempt, open);
  }
});

test('broker-initiated close with publishes in flight: the client gets the error, not a reset', { timeout: 120000 }, async () => {
  for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
    const model = await amqp.connect(AMQP_URL);
    const w = watch(model);
    try {
      // amqplib answers connection.close with close-ok and emits 'close' (after 'error') at once.
      const closed = new Promise((resolve) =>
        model.connection.once('close', (err) => {
          w.done = true;
          resolve(err);
        }),
      );
      const ch = await model.createChannel();
      w.watchChannel(ch);
      const { queue } = await ch.assertQueue('', { exclusive: true });
      // An unknown exchange type is a connection error (503) on RabbitMQ; the publishes queued
      // behind the declare reach the broker after it has sent connection.close.
      const xtype = 'warren-no-such-type';
      const declared = ch.assertExchange(`warren-test.close.${crypto.randomUUID()}`, xtype).then(
        () => null,
        (e) => e,
      );
      fill(ch, queue, w);
      const err = await within(`attempt ${attempt}: connection closed by the broker`, closed, w.details);
      assert.ok(err, `attempt ${attempt}: the connection closed without an error (${w.details()})`);
      assert.deepEqual(w.socketErrorsBeforeDone(), [], `attempt ${attempt}: socket errors before connection.close`);
      assert.equal(err.code, 503, `attempt ${attempt}: ${err.message}`);
      assert.match(err.message, new RegExp(`COMMAND_INVALID - unknown exchange type '${xtype}'`));
      assert.deepEqual(w.connectionErrors, [err.message]);
      assert.ok(await within(`attempt ${attempt}: exchange declare settled`, declared, w.details));
      await within(`attempt ${attempt}: socket closed`, w.socketClosed, w.details);
    } finally {
      w.socket.destroy();
    }
  }
});
