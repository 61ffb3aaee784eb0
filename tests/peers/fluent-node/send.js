// Sends three records with fluent-logger (Node) in one event mode, asking for acks
// (requireAckResponse), to the Forward-protocol server at HOST:PORT. Prints
// {"acked": N, "errors": [...]} and exits non-zero unless every record was acknowledged.
// Usage: node send.js HOST PORT Message|PackedForward|CompressedPackedForward
const logger = require('fluent-logger');

const [host, port, eventMode] = process.argv.slice(2);
const sender = logger.createFluentSender('node', {
  host,
  port: Number(port),
  eventMode,
  requireAckResponse: true,
  ackResponseTimeout: 10000,
  timeout: 5,
  reconnectInterval: 600000,
});
sender.on('error', () => {}); // each emit's callback reports its own error

// Fixed times, so two gateways given the same records log the same ones.
const records = [
  [{ message: `${eventMode} one`, n: 1, ok: true }, new logger.EventTime(1700000100, 1)],
  [{ log: `${eventMode} two`, nested: { list: [1, 'a'] } }, new logger.EventTime(1700000101, 2)],
  [{ message: `${eventMode} three` }, 1700000102],
];
let pending = records.length;
let acked = 0;
const errors = [];
const finish = () => {
  console.log(JSON.stringify({ acked, errors }));
  sender.end();
  process.exit(acked === records.length ? 0 : 1);
};
setTimeout(() => { errors.push('timed out'); finish(); }, 15000);
for (const [record, time] of records) {
  sender.emit(eventMode.toLowerCase(), record, time, (err) => {
    if (err) errors.push(String(err)); else acked += 1;
    if (--pending === 0) finish();
  });
}
