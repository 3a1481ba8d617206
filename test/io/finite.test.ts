/** Non-finite detection: float arrays, raw F16/BF16 bits, and the one-line error naming the tensor. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertFinite, countNonFinite, countNonFiniteBits, countNonFiniteData } from '../../src/io/finite.ts';
import { UserError } from '../../src/errors.ts';

test('countNonFinite counts NaN, +Inf and -Inf, nothing else', () => {
  assert.equal(countNonFinite(new Float32Array([0, -0, 1e-45, 3.4e38, -3.4e38])), 0);
  assert.equal(countNonFinite(new Float32Array([NaN, 1, Infinity, -Infinity, 2])), 3);
  assert.equal(countNonFinite(new Float64Array([Number.MAX_VALUE, NaN])), 1);
  assert.equal(countNonFinite(new Float32Array(0)), 0);
});

test('countNonFiniteBits reads F16 and BF16 bit patterns: all exponent bits set is Inf or NaN', () => {
  // F16: 0x7c00 +Inf, 0xfc00 -Inf, 0x7e00 NaN, 0x7bff max finite (65504), 0x0001 smallest subnormal.
  assert.equal(countNonFiniteBits(new Uint16Array([0x7c00, 0xfc00, 0x7e00, 0x7bff, 0x0001, 0x3c00]), 'F16'), 3);
  // BF16: 0x7f80 +Inf, 0xff80 -Inf, 0x7fc0 NaN, 0x7f7f max finite, 0x3f80 = 1.
  assert.equal(countNonFiniteBits(new Uint16Array([0x7f80, 0xff80, 0x7fc0, 0x7f7f, 0x3f80]), 'BF16'), 3);
  // The same bits mean different things: 0x7c00 is +Inf in F16 but a finite 2^121 in BF16.
  assert.equal(countNonFiniteBits(new Uint16Array([0x7c00]), 'BF16'), 0);
  // Agreement with the F32 values the BF16 bits stand for (BF16 = the top half of an F32).
  const bits = new Uint16Array(65536).map((_, i) => i);
  const f32 = new Float32Array(new Uint32Array(Array.from(bits, (b) => b << 16)).buffer);
  assert.equal(countNonFiniteBits(bits, 'BF16'), countNonFinite(f32));
});

test('countNonFiniteData dispatches on the array type; integers are always finite', () => {
  assert.equal(countNonFiniteData(new Float32Array([NaN])), 1);
  assert.equal(countNonFiniteData(new Uint16Array([0x7c00]), 'F16'), 1);
  assert.equal(countNonFiniteData(new Uint16Array([0x7c00])), 0, 'a Uint16Array without a half dtype is integers');
  assert.equal(countNonFiniteData(new Int32Array([2147483647])), 0);
  assert.equal(countNonFiniteData(new BigInt64Array([1n])), 0);
});

test('assertFinite: a UserError naming the source, the tensor and the count', () => {
  assertFinite('w', 'f.safetensors', new Float32Array([1, 2]));
  assert.throws(
    () => assertFinite('lora_A.weight', 'a/adapter_model.safetensors', new Float32Array([NaN, 1, Infinity, 0])),
    (e: unknown) => e instanceof UserError && e.message === 'a/adapter_model.safetensors: tensor "lora_A.weight" has 2 non-finite values (NaN/Inf) of 4',
  );
  assert.throws(() => assertFinite('w', 'm', new Uint16Array([0x7fc0]), 'BF16'), /tensor "w" has 1 non-finite value \(NaN\/Inf\) of 1$/);
});
