/**
 * Non-finite values (NaN, +Inf, -Inf) in stored weights. A checkpoint, an adapter or a base
 * model holding even one of them makes every forward through it NaN: evaluation then scores
 * 0 % with null log-likelihoods, generation prints nothing, and a merge writes a model of NaNs.
 * Loaders call {@link assertFinite} on every tensor they read, so the user gets one line naming
 * the tensor and the count instead.
 *
 * Half-precision tensors can be checked on their raw bit patterns, before any conversion:
 * a value is non-finite exactly when all of its exponent bits are set
 * (F16: `0x7c00`, BF16: `0x7f80`; the mantissa separates Inf from NaN).
 */
import { UserError } from '../errors.ts';

/** Exponent masks of the 16-bit float formats (all ones: Inf or NaN). */
const EXPONENT_MASK = { F16: 0x7c00, BF16: 0x7f80 } as const;

/** The 16-bit float formats {@link countNonFiniteBits} understands. */
export type HalfDType = keyof typeof EXPONENT_MASK;

/** Number of NaN / ±Inf entries of `values`. */
export function countNonFinite(values: Float32Array | Float64Array): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // `v - v` is 0 for finite v and NaN for NaN and ±Inf: one comparison per element.
    if (v - v !== 0) n++;
  }
  return n;
}

/** Number of NaN / ±Inf entries of raw F16 or BF16 bit patterns (one element per `Uint16`). */
export function countNonFiniteBits(bits: Uint16Array, dtype: HalfDType): number {
  const mask = EXPONENT_MASK[dtype];
  if (mask === undefined) throw new Error(`countNonFiniteBits: unsupported dtype ${String(dtype)}`);
  let n = 0;
  for (let i = 0; i < bits.length; i++) if ((bits[i] & mask) === mask) n++;
  return n;
}

/**
 * Number of non-finite entries of a host tensor's data, by type: float arrays are scanned,
 * `Uint16Array` is read as raw `dtype` bits (F16 or BF16), integer arrays are always finite.
 */
export function countNonFiniteData(data: ArrayLike<number> | ArrayLike<bigint>, dtype?: string): number {
  if (data instanceof Float32Array || data instanceof Float64Array) return countNonFinite(data);
  if (data instanceof Uint16Array && (dtype === 'F16' || dtype === 'BF16')) return countNonFiniteBits(data, dtype);
  return 0;
}

/**
 * Throw a {@link UserError} when `data` holds NaN or Inf:
 * `<source>: tensor "<name>" has <count> non-finite values (NaN/Inf) of <size>`.
 * `source` is the file (or directory) the tensor came from; `dtype` tells how a `Uint16Array`
 * of raw half-precision bits is read.
 */
export function assertFinite(
  tensorName: string,
  source: string,
  data: ArrayLike<number> | ArrayLike<bigint>,
  dtype?: string,
): void {
  const n = countNonFiniteData(data, dtype);
  if (n > 0) throw nonFiniteError(tensorName, source, n, data.length);
}

/** The error {@link assertFinite} throws, for callers that count elsewhere (the native weight store). */
export function nonFiniteError(tensorName: string, source: string, count: number, size: number): UserError {
  return new UserError(`${source}: tensor "${tensorName}" has ${count} non-finite value${count === 1 ? '' : 's'} (NaN/Inf) of ${size}`);
}
