// redact-js: a trailhead processor written in JavaScript (built with componentize-js).
//
// Replaces the values of sensitive attributes on spans and log records with "[REDACTED]",
// so secrets never reach Tempo or Loki. Config: {"keys": ["http.request.header.authorization"]}.
// Run it with `on_failure: drop` so a failing redactor fails closed.

const REDACTED = { tag: 'str', val: '[REDACTED]' };
let keys = [];

export function init(config) {
  const settings = JSON.parse(config || '{}');
  for (const key of Object.keys(settings)) {
    if (key !== 'keys') throw `${key}: unknown key; expected keys`;
  }
  keys = settings.keys ?? [];
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'string')) {
    throw 'keys: expected a list of strings';
  }
  return { name: 'redact-js', version: '0.1.0', signals: ['traces', 'logs'] };
}

// One column read and at most one write per key.
function redact(column, set) {
  for (const key of keys) {
    const present = [];
    column(key).forEach((value, i) => {
      if (value !== undefined) present.push(i);
    });
    if (present.length > 0) set(new Uint32Array(present), key, REDACTED);
  }
}

export function processSpans(batch) {
  redact((k) => batch.spanAttrColumn(k), (items, k, v) => batch.setSpanAttr(items, k, v));
}

export function processLogs(batch) {
  redact((k) => batch.recordAttrColumn(k), (items, k, v) => batch.setRecordAttr(items, k, v));
}

export function processMetrics(_batch) {}
