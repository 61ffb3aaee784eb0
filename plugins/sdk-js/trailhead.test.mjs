// Tests of trailhead.js under plain Node (`node --test plugins/sdk-js/`). componentize-js
// bundles only what the plugin imports, so this file never reaches a component.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Config, ConfigError, anyValue, durations, encodeKvlist, encodeString, ids, kvlistEntries, strings, values,
} from './trailhead.js';

const utf8 = new TextEncoder();

test('strings unpacks a string-column', () => {
  assert.deepEqual(strings({ bytes: utf8.encode('GETPOST'), ends: Uint32Array.from([3, 3, 7]) }), ['GET', '', 'POST']);
});

test('values unpacks every kind of a value-column', () => {
  const bits = new BigInt64Array(new Float64Array([1.5]).buffer)[0];
  const column = {
    kinds: ['none', 'str', 'boolean', 'int', 'double', 'bytes'],
    scalars: BigInt64Array.from([0n, 0n, 1n, -5n, bits, 0n]),
    bytes: Uint8Array.from([...utf8.encode('hé'), 1, 2]),
    ends: Uint32Array.from([0, 3, 3, 3, 3, 5]),
  };
  assert.deepEqual(values(column), [undefined, 'hé', true, -5n, 1.5, Uint8Array.from([1, 2])]);
});

test('ids splits packed IDs', () => {
  const packed = Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(ids(packed, 8), ['0001020304050607', '0000000000000000']);
  assert.deepEqual(ids(packed, 8, { hex: false })[1], new Uint8Array(8));
  assert.throws(() => ids(packed, 16 + 1));
});

test('durations are 0 where a time is unset or reversed', () => {
  assert.deepEqual(durations(BigUint64Array.from([100n, 0n, 300n]), BigUint64Array.from([250n, 50n, 200n])), [150, 0, 0]);
});

test('anyValue picks the arm from the JS type', () => {
  assert.deepEqual([anyValue('a'), anyValue(true), anyValue(3n), anyValue(1.5)].map((v) => v.tag), ['str', 'boolean', 'int', 'double']);
});

test('a kvlist round-trips, and an entry can be replaced', () => {
  const encoded = encodeKvlist([{ key: 'token', value: encodeString('s3cret') }, { key: 'user', value: encodeString('ann') }]);
  const entries = kvlistEntries(encoded);
  assert.deepEqual(entries.map((e) => e.key), ['token', 'user']);
  assert.deepEqual(entries[1].value, encodeString('ann'));
  const again = kvlistEntries(encodeKvlist([{ key: 'token', value: encodeString('[REDACTED]') }, entries[1]]));
  assert.deepEqual(again[0].value, encodeString('[REDACTED]'));
});

test('Config names the field it rejects', () => {
  assert.deepEqual(new Config('', ['keys']).strings('keys', ['a']), ['a']);
  assert.throws(() => new Config('{"key": []}', ['keys']), new ConfigError('key: unknown key; expected keys'));
  assert.throws(() => new Config('{"keys": [1]}', ['keys']).strings('keys'), new ConfigError('keys: expected a list of strings'));
  assert.throws(() => new Config('[]', ['keys']), new ConfigError('config: expected an object'));
  assert.equal(new Config('{"min_ms": 5}', ['min_ms']).integer('min_ms'), 5);
  assert.equal(new Config('', ['min_ms']).integer('min_ms', 100), 100);
  assert.throws(() => new Config('{"min_ms": 1.5}', ['min_ms']).integer('min_ms'), new ConfigError('min_ms: expected an integer'));
  assert.throws(() => new Config('{"min_ms": "5"}', ['min_ms']).integer('min_ms'), new ConfigError('min_ms: expected an integer'));
  assert.throws(() => new Config('{x', ['keys']), ConfigError);
});
