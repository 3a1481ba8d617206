/**
 * Half-precision conversions (IEEE 754 binary16 "F16" and bfloat16 "BF16") to and from float32,
 * on raw bit patterns. float32 -> half rounds to nearest, ties to even; NaN stays NaN (sign and
 * the top payload bits are kept, the quiet bit is set when truncation would leave an
 * all-zero payload), +-Inf and -0 are preserved, F16 subnormals are produced and read exactly.
 * half -> float32 is exact, so half -> float32 -> half is the identity on every bit pattern.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bit pattern of the float32 nearest `x` (as an unsigned 32-bit integer). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** The float32 value of the 32-bit pattern `bits`. */
export function f32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}

/** Convert float32 bits to binary16 bits (round to nearest even). */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // +-Inf
    const m = mant >>> 13;
    return sign | 0x7c00 | (m === 0 ? 0x200 : m); // NaN: keep the top payload bits
  }
  const e = exp - 112; // rebias: 127 - 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> Inf
  if (e <= 0) {
    // Result is an F16 subnormal (or zero): value = m * 2^-24.
    const shift = 14 - e; // >= 14
    if (shift > 24) return sign; // below half the smallest subnormal: rounds to +-0
    const full = mant | 0x800000; // f32 zero/subnormal inputs land here with shift > 24
    const m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (rem > half || (rem === half && (m & 1) === 1) ? m + 1 : m);
  }
  const m = mant >>> 13;
  const rem = mant & 0x1fff;
  const r = (e << 10) | m;
  // A carry out of the mantissa bumps the exponent, up to 0x7c00 (= Inf), which is right.
  return sign | (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1) ? r + 1 : r);
}

/** Convert binary16 bits to float32 bits (exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // Inf / NaN (payload kept)
  if (exp === 0) {
    if (mant === 0) return sign >>> 0; // +-0
    // Subnormal: normalise. value = mant * 2^-24.
    let e = -14;
    while ((mant & 0x400) === 0) {
      mant <<= 1;
      e -= 1;
    }
    mant &= 0x3ff;
    return (sign | ((e + 127) << 23) | (mant << 13)) >>> 0;
  }
  return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
}

/** Convert float32 bits to bfloat16 bits (round to nearest even). */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    const r = x >>> 16;
    return (r & 0x7f) === 0 ? r | 0x40 : r; // NaN stays NaN
  }
  // x + 0x7fff + lsb < 2^32 for every non-NaN x, so the double arithmetic is exact.
  return ((x >>> 0) + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** Convert bfloat16 bits to float32 bits (exact). */
export function bf16BitsToF32Bits(h: number): number {
  return (h << 16) >>> 0;
}

let f16Table: Uint32Array | undefined;

/** Decode little-endian F16 data (as 16-bit words) into a new Float32Array. */
export function f16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  if (src.length < 4096) {
    for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]);
    return out;
  }
  // Large tensors: a 256 KiB table of all 65536 patterns turns decoding into one lookup each.
  if (!f16Table) {
    f16Table = new Uint32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) f16Table[h] = f16BitsToF32Bits(h);
  }
  const table = f16Table;
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return out;
}

/** Decode BF16 data (as 16-bit words) into a new Float32Array. */
export function bf16ToF32Array(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** Encode a Float32Array as F16 words (round to nearest even). */
export function f32ToF16Array(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** Encode a Float32Array as BF16 words (round to nearest even). */
export function f32ToBf16Array(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}
