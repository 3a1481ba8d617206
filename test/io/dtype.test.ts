/**
 * F16/BF16 <-> F32 conversions, checked against independent references: the IEEE formula for
 * decoding every half pattern, a brute-force nearest-value search for encoding, and PyTorch's
 * own casts (test/fixtures/safetensors/half_conversions.json, made by
 * scripts/fixtures/make_safetensors_fixtures.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  bf16BitsToF32Bits,
  bf16ToF32Array,
  f16BitsToF32Bits,
  f16ToF32Array,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f32Bits,
  f32FromBits,
  f32ToBf16Array,
  f32ToF16Array,
} from '../../src/io/dtype.ts';
import { Rng } from '../../src/util/rng.ts';
import { bf16Value, f16Value } from './helpers.ts';

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/safetensors/half_conversions.json', import.meta.url), 'utf8'),
) as { f32: string[]; f16: string[]; bf16: string[] };

/** Round-to-nearest-even by brute force over a table of all non-negative finite values. */
function makeNearest(valueOf: (h: number) => number, maxFinite: number, infBits: number) {
  const pats: number[] = [];
  for (let h = 0; h <= maxFinite; h++) pats.push(h);
  // The first value past the largest finite one stands for +Inf (overflow rounds there).
  const vals = pats.map(valueOf);
  const last = vals[vals.length - 1];
  const step = last - vals[vals.length - 2];
  pats.push(infBits);
  vals.push(last + step);
  return (x: number): number => {
    const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
    const a = Math.abs(x);
    if (a >= vals[vals.length - 1]) return sign | infBits;
    let lo = 0;
    let hi = vals.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (vals[mid] <= a) lo = mid;
      else hi = mid;
    }
    const dLo = a - vals[lo];
    const dHi = vals[hi] - a;
    const pick = dLo < dHi ? lo : dHi < dLo ? hi : (pats[lo] & 1) === 0 ? lo : hi;
    return sign | pats[pick];
  };
}
const nearestF16 = makeNearest(f16Value, 0x7bff, 0x7c00);
const nearestBf16 = makeNearest(bf16Value, 0x7f7f, 0x7f80);

test('F16 -> F32 is exact for all 65536 patterns (IEEE definition)', () => {
  for (let h = 0; h < 0x10000; h++) {
    const got = f16BitsToF32Bits(h);
    const want = f16Value(h);
    if (Number.isNaN(want)) {
      // NaN: sign and the 10-bit payload move to the top of the F32 mantissa.
      assert.equal(got, (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0, `h=${h.toString(16)}`);
    } else {
      assert.equal(got, f32Bits(want), `h=${h.toString(16)}`);
    }
  }
});

test('BF16 -> F32 is exact for all 65536 patterns (definition)', () => {
  for (let h = 0; h < 0x10000; h++) {
    const want = bf16Value(h);
    const got = bf16BitsToF32Bits(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(f32FromBits(got)));
    else assert.equal(got, f32Bits(want), `h=${h.toString(16)}`);
    assert.equal(got, h * 65536);
  }
});

test('half -> F32 -> half is the identity on every bit pattern, NaN payloads included', () => {
  for (let h = 0; h < 0x10000; h++) {
    assert.equal(f32BitsToF16Bits(f16BitsToF32Bits(h)), h);
    assert.equal(f32BitsToBf16Bits(bf16BitsToF32Bits(h)), h);
  }
});

test("F32 -> F16/BF16 equals PyTorch's casts bit for bit (ties, subnormals, overflow, random)", () => {
  assert.ok(fixture.f32.length > 2500);
  for (let i = 0; i < fixture.f32.length; i++) {
    const x = parseInt(fixture.f32[i], 16);
    assert.equal(f32BitsToF16Bits(x), parseInt(fixture.f16[i], 16), `f16 of ${fixture.f32[i]}`);
    assert.equal(f32BitsToBf16Bits(x), parseInt(fixture.bf16[i], 16), `bf16 of ${fixture.f32[i]}`);
  }
});

test('F32 -> F16/BF16 equals a brute-force round-to-nearest-even on random bit patterns', () => {
  const rng = new Rng(7);
  const cases: number[] = [];
  for (let i = 0; i < 20000; i++) cases.push(Math.floor(rng.next() * 2 ** 32));
  // Concentrate some on the F16 range, where rounding is interesting.
  for (let i = 0; i < 20000; i++) cases.push(f32Bits((rng.next() - 0.5) * 2 ** (Math.floor(rng.next() * 50) - 30)));
  for (const bits of cases) {
    const x = f32FromBits(bits);
    if (Number.isNaN(x)) continue;
    assert.equal(f32BitsToF16Bits(bits), nearestF16(x), `f16 of ${bits.toString(16)}`);
    assert.equal(f32BitsToBf16Bits(bits), nearestBf16(x), `bf16 of ${bits.toString(16)}`);
  }
});

test('NaN stays NaN with its sign, Inf and -0 are preserved', () => {
  const nans = [0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7f801000, 0x7fa00000];
  for (const b of nans) {
    const h = f32BitsToF16Bits(b);
    assert.ok(Number.isNaN(f16Value(h)), `f16 of ${b.toString(16)}`);
    assert.equal(h & 0x8000, (b >>> 16) & 0x8000);
    const g = f32BitsToBf16Bits(b);
    assert.ok(Number.isNaN(bf16Value(g)), `bf16 of ${b.toString(16)}`);
    assert.equal(g & 0x8000, (b >>> 16) & 0x8000);
  }
  assert.equal(f32BitsToF16Bits(f32Bits(Infinity)), 0x7c00);
  assert.equal(f32BitsToF16Bits(f32Bits(-Infinity)), 0xfc00);
  assert.equal(f32BitsToBf16Bits(f32Bits(-Infinity)), 0xff80);
  assert.equal(f32BitsToF16Bits(f32Bits(-0)), 0x8000);
  assert.equal(f32BitsToBf16Bits(f32Bits(-0)), 0x8000);
  assert.equal(f32BitsToBf16Bits(f32Bits(3.4028235e38)), 0x7f80); // rounds up to Inf
});

test('array helpers agree with the scalar conversions', () => {
  const src = new Float32Array([0, -0, 1.5, -2.75e-6, 7e4, NaN, Infinity, 1e-30, 0.3]);
  const srcBits = new Uint32Array(src.buffer);
  const h = f32ToF16Array(src);
  const b = f32ToBf16Array(src);
  for (let i = 0; i < src.length; i++) {
    assert.equal(h[i], f32BitsToF16Bits(srcBits[i]));
    assert.equal(b[i], f32BitsToBf16Bits(srcBits[i]));
  }
  const hb = new Uint32Array(f16ToF32Array(h).buffer);
  const bb = new Uint32Array(bf16ToF32Array(b).buffer);
  for (let i = 0; i < src.length; i++) {
    assert.equal(hb[i], f16BitsToF32Bits(h[i]));
    assert.equal(bb[i], bf16BitsToF32Bits(b[i]));
  }
  // A view at a non-zero offset is converted from its own elements.
  const view = new Float32Array(src.buffer, 8, 3);
  assert.deepEqual([...f32ToF16Array(view)], [...h.subarray(2, 5)]);
});

test('large-array F16 decoding (table path) equals the scalar conversion for all patterns', () => {
  const all = new Uint16Array(0x10000).map((_, i) => i);
  const bits = new Uint32Array(f16ToF32Array(all).buffer);
  for (let h = 0; h < 0x10000; h++) assert.equal(bits[h], f16BitsToF32Bits(h));
  const bb = new Uint32Array(bf16ToF32Array(all).buffer);
  for (let h = 0; h < 0x10000; h++) assert.equal(bb[h], bf16BitsToF32Bits(h));
});
