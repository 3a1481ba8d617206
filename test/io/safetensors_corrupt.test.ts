/**
 * Corrupt safetensors files: each is rejected with a UserError whose message names the file,
 * the tensor where there is one, and the specific problem — from disk and from memory alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors, parseSafetensors, readSafetensors } from '../../src/io/safetensors.ts';
import { UserError } from '../../src/errors.ts';
import { tempDir } from './helpers.ts';

/** Build a file from a header (object or raw text), data bytes, and an optional length override. */
function craft(header: object | string, dataBytes = 0, opts: { n?: bigint; raw?: Uint8Array } = {}): Uint8Array {
  const hb = opts.raw ?? Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const buf = new Uint8Array(8 + hb.byteLength + dataBytes);
  new DataView(buf.buffer).setBigUint64(0, opts.n ?? BigInt(hb.byteLength), true);
  buf.set(hb, 8);
  return buf;
}
const e = (dtype: string, shape: unknown, offs: unknown) => ({ dtype, shape, data_offsets: offs });

const CASES: { name: string; bytes: Uint8Array; msg: RegExp }[] = [
  { name: 'shorter than 8 bytes', bytes: new Uint8Array([1, 2, 3, 4, 5]), msg: /5 bytes, shorter than the 8-byte header length/ },
  { name: 'header length over the 100 MB limit', bytes: craft({}, 0, { n: 1n << 40n }), msg: /header length 1099511627776 exceeds the format's limit of 100000000 bytes/ },
  { name: 'header length past the end', bytes: craft('{}', 0, { n: 500n }), msg: /header length 500 runs past the end of the file \(10 bytes/ },
  { name: 'empty header', bytes: craft('', 0), msg: /header is empty \(length 0\)/ },
  { name: 'invalid UTF-8', bytes: craft('', 0, { raw: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }), msg: /header is not valid UTF-8/ },
  { name: 'invalid JSON', bytes: craft('{"w": {"dtype": "F32",'), msg: /header is not valid JSON/ },
  { name: 'UTF-8 BOM before the JSON', bytes: craft('\ufeff{}'), msg: /header starts with a UTF-8 byte order mark/ },
  { name: 'header is an array', bytes: craft('[1,2]'), msg: /header must be a JSON object, got array/ },
  { name: 'entry is not an object', bytes: craft({ w: 5 }), msg: /tensor "w": entry must be an object with dtype, shape and data_offsets, got number/ },
  { name: 'missing field', bytes: craft({ w: { dtype: 'F32', shape: [1] } }, 4), msg: /tensor "w": missing field "data_offsets"/ },
  { name: 'unknown dtype', bytes: craft({ w: e('F33', [1], [0, 4]) }, 4), msg: /tensor "w": unknown dtype "F33"/ },
  { name: 'negative dimension', bytes: craft({ w: e('F32', [2, -1], [0, 8]) }, 8), msg: /tensor "w": shape \[2,-1\] has dimension -1; dimensions must be non-negative integers/ },
  { name: 'fractional dimension', bytes: craft({ w: e('F32', [1.5], [0, 6]) }, 6), msg: /tensor "w": shape \[1\.5\] has dimension 1\.5/ },
  { name: 'shape not an array', bytes: craft({ w: e('F32', 4, [0, 16]) }, 16), msg: /tensor "w": "shape" must be an array, got 4/ },
  { name: 'data_offsets with one number', bytes: craft({ w: e('F32', [1], [4]) }, 4), msg: /tensor "w": "data_offsets" must be \[begin, end\] with non-negative integers, got \[4\]/ },
  { name: 'data_offsets negative', bytes: craft({ w: e('F32', [1], [-4, 0]) }, 4), msg: /tensor "w": "data_offsets" must be \[begin, end\]/ },
  { name: 'data_offsets end before begin', bytes: craft({ w: e('F32', [0], [8, 4]) }, 8), msg: /tensor "w": data_offsets \[8, 4\] end before they begin/ },
  { name: 'shape x dtype != span', bytes: craft({ w: e('F32', [2, 3], [0, 16]) }, 16), msg: /tensor "w": shape \[2, 3\] of F32 needs 24 bytes but data_offsets \[0, 16\] span 16 bytes/ },
  { name: 'sub-byte dtype not whole bytes', bytes: craft({ w: e('F4', [3], [0, 1]) }, 1), msg: /tensor "w": shape \[3\] of F4 is not a whole number of bytes/ },
  { name: 'span past the end of the file', bytes: craft({ a: e('F32', [2], [0, 8]), w: e('F32', [4], [8, 24]) }, 16), msg: /tensor "w": data_offsets \[8, 24\] run past the end of the file \(data section holds 16 bytes/ },
  { name: 'overlapping spans', bytes: craft({ a: e('F32', [4], [0, 16]), b: e('F32', [4], [8, 24]) }, 24), msg: /tensors "a" \[0, 16\] and "b" \[8, 24\] overlap/ },
  { name: 'hole between spans', bytes: craft({ a: e('F32', [2], [0, 8]), b: e('F32', [2], [16, 24]) }, 24), msg: /hole of 8 bytes between tensor "a" \(ends at 8\) and tensor "b" \(starts at 16\)/ },
  { name: 'data not starting at 0', bytes: craft({ w: e('F32', [1], [4, 8]) }, 8), msg: /hole of 4 bytes at the start of the data section, before tensor "w"/ },
  { name: 'trailing bytes', bytes: craft({ w: e('F32', [1], [0, 4]) }, 12), msg: /8 trailing bytes after the last tensor's data \(tensors end at 4, data section holds 12 bytes\)/ },
  { name: 'duplicate tensor names', bytes: craft('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), msg: /duplicate tensor name "w" in the header/ },
  { name: 'duplicate names spelled with escapes', bytes: craft('{"ab":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a\\u0062":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', 2), msg: /duplicate tensor name "ab"/ },
  { name: 'duplicate key inside an entry', bytes: craft('{"w":{"dtype":"F64","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4), msg: /duplicate key "dtype" in the header entry "w"/ },
  { name: 'metadata value not a string', bytes: craft({ __metadata__: { epoch: 3 } }), msg: /"__metadata__" value of "epoch" must be a string, got number 3/ },
  { name: 'metadata not an object', bytes: craft({ __metadata__: ['a'] }), msg: /"__metadata__" must be an object of string values, got array/ },
  { name: 'BOOL byte other than 0/1', bytes: (() => { const b = craft({ m: e('BOOL', [2], [0, 2]) }, 2); b[b.length - 1] = 2; return b; })(), msg: /tensor "m": BOOL element 1 has byte value 2 \(must be 0 or 1\)/ },
];

test(`${CASES.length} distinct corrupt files are each rejected with their own message (from memory)`, () => {
  assert.ok(CASES.length >= 12);
  assert.equal(new Set(CASES.map((c) => c.msg.source)).size, CASES.length, 'messages are distinct');
  for (const c of CASES) {
    assert.throws(
      () => parseSafetensors(c.bytes, 'mem.safetensors'),
      (err: unknown) => {
        assert.ok(err instanceof UserError, `${c.name}: ${String(err)}`);
        assert.match(err.message, c.msg, c.name);
        assert.ok(err.message.startsWith('mem.safetensors: '), `${c.name}: names the file`);
        assert.ok(!err.message.includes('\n'), `${c.name}: one line`);
        return true;
      },
      c.name,
    );
  }
});

test('the same corrupt files are rejected from disk, naming the path; open/read failures are UserErrors', () => {
  const { dir, cleanup } = tempDir();
  try {
    for (const [i, c] of CASES.entries()) {
      const path = join(dir, `bad${i}.safetensors`);
      writeFileSync(path, c.bytes);
      assert.throws(
        () => readSafetensors(path),
        (err: unknown) => err instanceof UserError && err.message.startsWith(`${path}: `) && c.msg.test(err.message),
        c.name,
      );
    }
    assert.throws(() => openSafetensors(join(dir, 'none.safetensors')), /none\.safetensors: cannot open: no such file/);
    mkdirSync(join(dir, 'sub'));
    assert.throws(() => openSafetensors(join(dir, 'sub')), /sub: is a directory, not a safetensors file/);
  } finally {
    cleanup();
  }
});

test('valid edge cases are accepted: zero-size tensors sharing an offset, null metadata, trailing-space padding', () => {
  const bytes = craft(
    '{"__metadata__":null,"z1":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"z2":{"dtype":"I64","shape":[3,0],"data_offsets":[2,2]},"extra":{"dtype":"U8","shape":[],"data_offsets":[2,3],"note":1}}      ',
    3,
  );
  bytes[bytes.length - 1] = 9;
  const { metadata, tensors } = parseSafetensors(bytes);
  assert.deepEqual(metadata, {});
  assert.deepEqual([...tensors.keys()], ['z1', 'a', 'z2', 'extra']);
  assert.deepEqual(tensors.get('z2')!.shape, [3, 0]);
  assert.equal(tensors.get('z2')!.data.length, 0);
  assert.deepEqual([...(tensors.get('extra')!.data as Uint8Array)], [9]);
});
