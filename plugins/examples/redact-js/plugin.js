// redact-js: a trailhead processor written in JavaScript (built with componentize-js).
//
// Replaces the values of sensitive attributes on spans and log records with "[REDACTED]",
// so secrets never reach Tempo or Loki. A structured log body (a key-value list) is redacted
// the same way: its top-level entries with one of the keys get "[REDACTED]" as their value.
// Config: {"keys": ["http.request.header.authorization"]}.
// Run it with `on_failure: drop` so a failing redactor fails closed.
//
// Contract 0.2.0; ../../sdk-js/trailhead.js unpacks the columns and checks the config.

import { Config, ConfigError, encodeKvlist, encodeString, kvlistEntries, values } from '../../sdk-js/trailhead.js';

const REDACTED = '[REDACTED]';
const REDACTED_VALUE = { tag: 'str', val: REDACTED };
let keys = [];

export function init(config) {
  try {
    keys = new Config(config, ['keys']).strings('keys');
  } catch (e) {
    // A thrown string is init's `err`: the host reports it as a config error.
    throw e instanceof ConfigError ? e.message : e;
  }
  return { name: 'redact-js', version: '0.2.0', signals: ['traces', 'logs'] };
}

// One column read and at most one write per key, at the `item` level (spans or records).
function redactAttrs(batch) {
  for (const key of keys) {
    const present = [];
    values(batch.attrColumn('item', key)).forEach((value, i) => {
      if (value !== undefined) present.push(i);
    });
    if (present.length > 0) batch.setAttr('item', new Uint32Array(present), key, REDACTED_VALUE);
  }
}

// One read of the bodies, and one write for every record whose map body held a key.
function redactBodies(batch) {
  const column = batch.bodies();
  const indexes = [];
  const bodies = [];
  values(column).forEach((body, i) => {
    if (column.kinds[i] !== 'kvlist') return;
    const entries = kvlistEntries(body);
    if (!entries.some((e) => keys.includes(e.key))) return;
    const redacted = entries.map((e) => (keys.includes(e.key) ? { key: e.key, value: encodeString(REDACTED) } : e));
    indexes.push(i);
    bodies.push({ tag: 'kvlist', val: encodeKvlist(redacted) });
  });
  if (indexes.length > 0) batch.setBodies(new Uint32Array(indexes), bodies);
}

export function processSpans(batch) {
  redactAttrs(batch);
}

export function processLogs(batch) {
  redactAttrs(batch);
  if (keys.length > 0) redactBodies(batch);
}

// Only traces and logs are asked for in `init`, so the host never calls this.
export function processMetrics(_batch) {}
