// trailhead.js: small helpers for trailhead processor plugins written in JavaScript (contract
// 0.2.0, built with componentize-js).
//
// The 0.2.0 batches hand out packed columns (`string-column`, `value-column`, IDs packed one
// after another) because one copy across the boundary is far cheaper than a JS object per
// entry. These helpers unpack them inside the plugin. Import this file by a relative path:
// componentize-js bundles relative imports itself, so no bundler is needed, but it sees only
// files under the directory it is run from: run it from one that holds both the plugin and
// this file (the repo root, as the Makefile does), not from the plugin's own folder.
//
// How jco maps the WIT: enums are strings ('item', 'str'), `list<u8>` a Uint8Array,
// `list<u32>` a Uint32Array, `list<s64>` a BigInt64Array, `list<u64>` a BigUint64Array, a
// variant `{tag, val}`, and a thrown value from an export its `err`.
//
// Tests: `node --test plugins/sdk-js/`.

const utf8 = new TextDecoder();
const utf8Encoder = new TextEncoder();

/**
 * Unpacks a `string-column` into an array of strings, one per entry ('' where absent).
 * @param {{bytes: Uint8Array, ends: Uint32Array}} column
 * @returns {string[]}
 */
export function strings(column) {
  const out = new Array(column.ends.length);
  let start = 0;
  column.ends.forEach((end, i) => {
    out[i] = utf8.decode(column.bytes.subarray(start, end));
    start = end;
  });
  return out;
}

/**
 * Unpacks a `value-column` into an array of JS values, one per entry: `undefined` where an
 * entry has no value, else a string, boolean, BigInt (ints are 64-bit, as `any-value` takes
 * them back), number (doubles) or Uint8Array (bytes, and the protobuf encodings of arrays and
 * key-value lists; `column.kinds[i]` tells them apart, and `kvlistEntries` reads a kvlist).
 * @param {{kinds: string[], scalars: BigInt64Array, bytes: Uint8Array, ends: Uint32Array}} column
 * @returns {Array<string|boolean|bigint|number|Uint8Array|undefined>}
 */
export function values(column) {
  const { kinds, scalars, bytes, ends } = column;
  // The same 64 bits read as doubles: the scalar of a `double` entry is its IEEE 754 bits.
  const doubles = new Float64Array(BigInt64Array.from(scalars).buffer);
  const out = new Array(kinds.length);
  let start = 0;
  for (let i = 0; i < kinds.length; i++) {
    const end = ends[i];
    switch (kinds[i]) {
      case 'none': out[i] = undefined; break;
      case 'str': out[i] = utf8.decode(bytes.subarray(start, end)); break;
      case 'boolean': out[i] = scalars[i] !== 0n; break;
      case 'int': out[i] = scalars[i]; break;
      case 'double': out[i] = doubles[i]; break;
      default: out[i] = bytes.slice(start, end);
    }
    start = end;
  }
  return out;
}

/**
 * Splits packed IDs (16 bytes per trace ID, 8 per span ID) into one lowercase hex string per
 * entry, as OTLP/JSON writes them ('000…0' where absent), or into Uint8Arrays with `hex: false`.
 * @param {Uint8Array} packed
 * @param {number} width
 * @param {{hex?: boolean}} [options]
 * @returns {Array<string|Uint8Array>}
 */
export function ids(packed, width, { hex = true } = {}) {
  if (width <= 0 || packed.length % width !== 0) {
    throw new Error(`${packed.length} bytes is not a whole number of ${width}-byte IDs`);
  }
  const out = [];
  for (let at = 0; at < packed.length; at += width) {
    const id = packed.slice(at, at + width);
    out.push(hex ? Array.from(id, (b) => b.toString(16).padStart(2, '0')).join('') : id);
  }
  return out;
}

/**
 * Span durations in nanoseconds, as numbers (exact up to ~104 days), from `startTimes()` and
 * `endTimes()`. 0 where either time is unset or the span ends before it starts, so a malformed
 * span reads as instantaneous rather than as a huge or negative duration.
 * @param {BigUint64Array} starts
 * @param {BigUint64Array} ends
 * @returns {number[]}
 */
export function durations(starts, ends) {
  return Array.from(starts, (s, i) => {
    const e = ends[i];
    return s && e && e >= s ? Number(e - s) : 0;
  });
}

/**
 * Wraps a JS value as an `any-value` variant for writes such as `setAttr`: a string, boolean,
 * BigInt (int), number (double) or Uint8Array (bytes).
 * @param {string|boolean|bigint|number|Uint8Array} value
 * @returns {{tag: string, val: unknown}}
 */
export function anyValue(value) {
  switch (typeof value) {
    case 'string': return { tag: 'str', val: value };
    case 'boolean': return { tag: 'boolean', val: value };
    case 'bigint': return { tag: 'int', val: value };
    case 'number': return { tag: 'double', val: value };
  }
  if (value instanceof Uint8Array) return { tag: 'bytes', val: value };
  throw new TypeError(`no any-value for ${value}`);
}

// Protobuf, just enough for `KeyValueList { repeated KeyValue values = 1; }` and
// `KeyValue { string key = 1; AnyValue value = 2; }`, which `value-column` and `any-value`
// carry encoded because WIT has no recursive types.

function readVarint(buf, at) {
  let value = 0, shift = 0, byte;
  do {
    if (at >= buf.length) throw new Error('truncated protobuf');
    byte = buf[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}

function writeVarint(out, value) {
  while (value > 0x7f) {
    out.push((value % 0x80) | 0x80);
    value = Math.floor(value / 0x80);
  }
  out.push(value);
}

// The length-delimited fields of a message, as [field number, bytes]. Other wire types are
// skipped: neither message above has any.
function* fields(buf) {
  let at = 0;
  while (at < buf.length) {
    let tag, len;
    [tag, at] = readVarint(buf, at);
    const wire = tag & 7;
    if (wire === 2) {
      [len, at] = readVarint(buf, at);
      yield [tag >>> 3, buf.subarray(at, at + len)];
      at += len;
    } else if (wire === 0) {
      [, at] = readVarint(buf, at);
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
    } else {
      throw new Error(`unexpected protobuf wire type ${wire}`);
    }
  }
}

function field(out, number, bytes) {
  writeVarint(out, (number << 3) | 2);
  writeVarint(out, bytes.length);
  for (const b of bytes) out.push(b);
}

/**
 * The top-level entries of an encoded `KeyValueList` (a kvlist attribute or log body), as
 * `{key, value}` with `value` still an encoded `AnyValue`.
 * @param {Uint8Array} encoded
 * @returns {Array<{key: string, value: Uint8Array}>}
 */
export function kvlistEntries(encoded) {
  const entries = [];
  for (const [number, kv] of fields(encoded)) {
    if (number !== 1) continue;
    const entry = { key: '', value: new Uint8Array(0) };
    for (const [n, bytes] of fields(kv)) {
      if (n === 1) entry.key = utf8.decode(bytes);
      else if (n === 2) entry.value = bytes;
    }
    entries.push(entry);
  }
  return entries;
}

/**
 * Encodes entries, as `kvlistEntries` returns them, back into a `KeyValueList`.
 * @param {Array<{key: string, value: Uint8Array}>} entries
 * @returns {Uint8Array}
 */
export function encodeKvlist(entries) {
  const out = [];
  for (const { key, value } of entries) {
    const kv = [];
    field(kv, 1, utf8Encoder.encode(key));
    field(kv, 2, value);
    field(out, 1, kv);
  }
  return Uint8Array.from(out);
}

/**
 * Encodes a string as an `AnyValue` (its `string_value` arm), for a kvlist entry's value.
 * @param {string} text
 * @returns {Uint8Array}
 */
export function encodeString(text) {
  const out = [];
  field(out, 1, utf8Encoder.encode(text));
  return Uint8Array.from(out);
}

/** A config the plugin rejects; its message names the field (`keys: expected a list of strings`). */
export class ConfigError extends Error {}

/**
 * The processor's JSON config, read with checks that name the offending field. Keys outside
 * `known` are rejected, so a typo is an error rather than silently ignored. Throws
 * `ConfigError`; rethrow its `message` from `init` to reject the config.
 */
export class Config {
  /**
   * @param {string} text the config `init` got ('' means `{}`)
   * @param {string[]} known the keys the plugin reads
   */
  constructor(text, known = []) {
    try {
      this.settings = JSON.parse(text || '{}');
    } catch (e) {
      throw new ConfigError(`config: invalid JSON: ${e.message}`);
    }
    if (this.settings === null || typeof this.settings !== 'object' || Array.isArray(this.settings)) {
      throw new ConfigError('config: expected an object');
    }
    const unknown = Object.keys(this.settings).filter((k) => !known.includes(k)).sort();
    if (unknown.length > 0) {
      throw new ConfigError(`${unknown[0]}: unknown key; expected ${known.join(', ')}`);
    }
  }

  /**
   * The array of strings at `key`, or `fallback` when absent.
   * @param {string} key
   * @param {string[]} [fallback]
   * @returns {string[]}
   */
  strings(key, fallback = []) {
    const value = this.settings[key] ?? fallback;
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
      throw new ConfigError(`${key}: expected a list of strings`);
    }
    return value;
  }

  /**
   * The string at `key`, or `fallback` when absent.
   * @param {string} key
   * @param {string} [fallback]
   * @returns {string}
   */
  string(key, fallback = '') {
    const value = this.settings[key] ?? fallback;
    if (typeof value !== 'string') throw new ConfigError(`${key}: expected a string`);
    return value;
  }

  /**
   * The boolean at `key`, or `fallback` when absent.
   * @param {string} key
   * @param {boolean} [fallback]
   * @returns {boolean}
   */
  boolean(key, fallback = false) {
    const value = this.settings[key] ?? fallback;
    if (typeof value !== 'boolean') throw new ConfigError(`${key}: expected true or false`);
    return value;
  }

  /**
   * The integer at `key`, or `fallback` when absent (a number with a fraction is refused), as
   * the Python helper's `integer`.
   * @param {string} key
   * @param {number} [fallback]
   * @returns {number}
   */
  integer(key, fallback = 0) {
    const value = this.settings[key] ?? fallback;
    if (!Number.isInteger(value)) throw new ConfigError(`${key}: expected an integer`);
    return value;
  }
}
