/**
 * Property-based tests (fast-check, bounded runs): random valid files round-trip bit-exactly;
 * random truncations, byte flips, insertions/deletions, header-length patches and random JSON
 * headers never crash or hang the reader — it returns data or throws a one-line UserError.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  type DType,
  type HostTensor,
} from '../../src/io/safetensors.ts';
import { UserError } from '../../src/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { bf16ToF32Array, f16ToF32Array } from '../../src/io/dtype.ts';
import { bytesOf, tempDir } from './helpers.ts';

const DTYPES: DType[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'U8', 'BOOL'];

/** A tensor of `dtype` and `shape` filled with random bit patterns (any float, NaNs included). */
function randomTensor(dtype: DType, shape: number[], seed: number): HostTensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, d) => a * d, 1);
  const rawBytes = new Uint8Array(n * 8).map(() => rng.int(256));
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data: new Float32Array(rawBytes.buffer, 0, n) };
    case 'F16':
    case 'BF16': {
      // Values exactly representable in the half dtype (every pattern, NaN payloads included),
      // widened by the conversions that test/io/dtype.test.ts checks against the IEEE formulas.
      const halves = new Uint16Array(rawBytes.buffer, 0, n);
      return { dtype, shape, data: dtype === 'F16' ? f16ToF32Array(halves) : bf16ToF32Array(halves) };
    }
    case 'I32':
      return { dtype, shape, data: new Int32Array(rawBytes.buffer, 0, n) };
    case 'I64':
      return { dtype, shape, data: new BigInt64Array(rawBytes.buffer, 0, n) };
    case 'U8':
      return { dtype, shape, data: rawBytes.slice(0, n) };
    case 'BOOL':
      return { dtype, shape, data: rawBytes.slice(0, n).map((b) => b & 1) };
  }
}

const tensorSpec = fc.record({
  name: fc.string({ minLength: 0, maxLength: 6 }),
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.nat(4), { maxLength: 3 }),
  seed: fc.nat(),
});
const fileSpec = fc.record({
  tensors: fc.uniqueArray(tensorSpec, { selector: (t) => t.name, maxLength: 5 }),
  metadata: fc.option(fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined }),
});

type FileSpec = { tensors: { name: string; dtype: DType; shape: number[]; seed: number }[]; metadata?: Record<string, string> };
type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'flip'; ops: [number, number][]; region: 'header' | 'data' | 'any' }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'length'; n: bigint }
  | { kind: 'digit'; picks: [number, number][] }
  | { kind: 'swap'; i: number; j: number };

function build(spec: FileSpec): { tensors: Map<string, HostTensor>; bytes: Uint8Array } {
  const tensors = new Map<string, HostTensor>();
  for (const t of spec.tensors) if (t.name !== '__metadata__') tensors.set(t.name, randomTensor(t.dtype, t.shape, t.seed));
  return { tensors, bytes: serializeSafetensors(tensors, spec.metadata ? { metadata: spec.metadata } : {}) };
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('flip' as const), ops: fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), region: fc.constantFrom('header' as const, 'data' as const, 'any' as const) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant('length' as const), n: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }) }),
  // Structure-aware: rewrite digits of the header (shapes, offsets) or swap two of its bytes.
  fc.record({ kind: fc.constant('digit' as const), picks: fc.array(fc.tuple(fc.nat(), fc.nat(9)), { minLength: 1, maxLength: 3 }) }),
  fc.record({ kind: fc.constant('swap' as const), i: fc.nat(), j: fc.nat() }),
);

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  const b = src.slice();
  const n = Number(new DataView(b.buffer).getBigUint64(0, true));
  switch (m.kind) {
    case 'truncate':
      return b.slice(0, m.at % b.length);
    case 'flip': {
      // Flips in the data section leave a valid file (except BOOL bytes); in the header they mostly break it.
      const [lo, hi] = m.region === 'header' ? [0, 8 + n] : m.region === 'data' ? [8 + n, b.length] : [0, b.length];
      if (hi > lo) for (const [pos, val] of m.ops) b[lo + (pos % (hi - lo))] = val;
      return b;
    }
    case 'insert': {
      const at = m.at % (b.length + 1);
      return new Uint8Array([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    }
    case 'delete': {
      const at = m.at % b.length;
      return new Uint8Array([...b.subarray(0, at), ...b.subarray(at + m.count)]);
    }
    case 'digit': {
      const digits: number[] = [];
      for (let i = 8; i < 8 + n; i++) if (b[i] >= 0x30 && b[i] <= 0x39) digits.push(i);
      for (const [k, d] of m.picks) if (digits.length) b[digits[k % digits.length]] = 0x30 + d;
      return b;
    }
    case 'swap': {
      const [i, j] = [8 + (m.i % n), 8 + (m.j % n)];
      [b[i], b[j]] = [b[j], b[i]];
      return b;
    }
    case 'length':
      new DataView(b.buffer).setBigUint64(0, m.n, true);
      return b;
  }
}

/** Parse, accepting a result or a clean UserError; anything else fails the property. */
function parsesCleanly(bytes: Uint8Array): 'ok' | 'rejected' {
  try {
    const { tensors } = parseSafetensors(bytes, 'fuzz.safetensors');
    for (const t of tensors.values()) assert.equal(t.data.length, t.shape.reduce((a, d) => a * d, 1));
    return 'ok';
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    assert.ok(e.message.startsWith('fuzz.safetensors: '), e.message);
    assert.ok(!e.message.includes('\n'), e.message);
    return 'rejected';
  }
}

test('random valid files round-trip bit-exactly (property)', { timeout: 30_000 }, () => {
  fc.assert(
    fc.property(fileSpec, (spec) => {
      const { tensors, bytes } = build(spec);
      const back = parseSafetensors(bytes);
      assert.deepEqual(back.metadata, { ...spec.metadata });
      assert.equal(back.tensors.size, tensors.size);
      for (const [name, t] of tensors) {
        const g = back.tensors.get(name)!;
        assert.deepEqual(g.shape, t.shape);
        // F16/BF16 entries come back as F32 with the same values.
        assert.equal(g.dtype, t.dtype === 'F16' || t.dtype === 'BF16' ? 'F32' : t.dtype);
        assert.deepEqual(bytesOf(g.data), bytesOf(t.data), name);
      }
    }),
    { numRuns: 200, seed: 42 },
  );
});

test('truncated, flipped, spliced files and patched lengths: data or a clean UserError, never a crash', { timeout: 30_000 }, () => {
  const counts = { ok: 0, rejected: 0 };
  fc.assert(
    fc.property(fileSpec, mutation, (spec, m) => {
      const { bytes } = build(spec);
      counts[parsesCleanly(mutate(bytes, m as Mutation))]++;
    }),
    { numRuns: 1500, seed: 7 },
  );
  // Both outcomes occur (the generator reaches the validator's rejections and benign flips).
  assert.ok(counts.rejected > 500 && counts.ok > 50, JSON.stringify(counts));
});

test('random JSON headers: data or a clean UserError', { timeout: 30_000 }, () => {
  const entry = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({
      dtype: fc.oneof(fc.constantFrom('F32', 'U8', 'BOOL', 'I64', 'F4', 'F6_E2M3', 'X'), fc.jsonValue({ maxDepth: 1 })),
      shape: fc.oneof(fc.array(fc.integer({ min: -2, max: 5 }), { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
      data_offsets: fc.oneof(fc.tuple(fc.nat(40), fc.nat(40)), fc.jsonValue({ maxDepth: 1 })),
    }),
  );
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom('a', 'b', 'c', '__metadata__'), entry, { maxKeys: 4 }), fc.nat(48), (header, dataLen) => {
      const hb = Buffer.from(JSON.stringify(header));
      const buf = new Uint8Array(8 + hb.length + dataLen);
      new DataView(buf.buffer).setBigUint64(0, BigInt(hb.length), true);
      buf.set(hb, 8);
      parsesCleanly(buf);
    }),
    { numRuns: 1500, seed: 3 },
  );
});

test('mutated files on disk: readSafetensors returns data or a clean UserError', { timeout: 30_000 }, () => {
  const { dir, cleanup } = tempDir();
  try {
    let i = 0;
    fc.assert(
      fc.property(fileSpec, mutation, (spec, m) => {
        const path = join(dir, `f${i++ % 4}.safetensors`);
        writeFileSync(path, mutate(build(spec).bytes, m as Mutation));
        try {
          readSafetensors(path);
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          assert.ok(e.message.startsWith(`${path}: `), e.message);
        }
      }),
      { numRuns: 150, seed: 11 },
    );
  } finally {
    cleanup();
  }
});
