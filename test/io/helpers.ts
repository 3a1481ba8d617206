/** Shared helpers for the safetensors tests: temp dirs, sample tensors, an independent parser. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HostTensor } from '../../src/io/safetensors.ts';

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'mor-io-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Float32Array from raw 32-bit patterns (to place exact NaN payloads, -0, subnormals). */
export function f32FromBitsArray(bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits.map((b) => b >>> 0)).buffer);
}

/** One tensor of every dtype, with edge values (NaN payloads, -0, subnormals, extremes). */
export function sampleTensors(): Record<string, HostTensor> {
  return {
    'f32.edge': {
      dtype: 'F32',
      shape: [2, 5],
      data: f32FromBitsArray([
        0x00000000, 0x80000000, 0x00000001, 0x807fffff, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00001, 0xffa00005,
        0x3eaaaaab,
      ]),
    },
    'f32.scalar': { dtype: 'F32', shape: [], data: new Float32Array([-1.25]) },
    'f32.empty': { dtype: 'F32', shape: [3, 0], data: new Float32Array(0) },
    i32: { dtype: 'I32', shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
    i64: {
      dtype: 'I64',
      shape: [2, 2],
      data: new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n]),
    },
    u8: { dtype: 'U8', shape: [3], data: new Uint8Array([0, 128, 255]) },
    mask: { dtype: 'BOOL', shape: [2, 3], data: new Uint8Array([1, 0, 0, 1, 1, 0]) },
  };
}

/** The raw bytes of a typed array (for bit-exact comparisons, NaN payloads included). */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** What an independent, spec-following reader sees in a file. */
export interface SpecEntry {
  name: string;
  dtype: string;
  shape: number[];
  dataOffsets: [number, number];
  keys: string[];
}

/**
 * Parse a safetensors buffer straight from the format description, without the library:
 * returns the header length, the raw JSON text, the top-level keys in order and the entries.
 */
export function specParse(buf: Uint8Array): {
  n: number;
  text: string;
  topKeys: string[];
  metadata: unknown;
  entries: SpecEntry[];
  data: Uint8Array;
} {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  const text = Buffer.from(buf.subarray(8, 8 + n)).toString('utf8');
  const header = JSON.parse(text) as Record<string, unknown>;
  const topKeys = Object.keys(header); // note: integer-like names reorder here; callers use the text
  const entries: SpecEntry[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = v as { dtype: string; shape: number[]; data_offsets: [number, number] };
    entries.push({ name, dtype: e.dtype, shape: e.shape, dataOffsets: e.data_offsets, keys: Object.keys(e) });
  }
  return { n, text, topKeys, metadata: header.__metadata__, entries, data: buf.subarray(8 + n) };
}

/** The IEEE 754 binary16 value of the bit pattern `h`, from the definition (float64 math). */
export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -24;
  return s * 2 ** (e - 15) * (1 + m / 1024);
}

/** The bfloat16 value of the bit pattern `h`: sign, 8-bit exponent, 7-bit mantissa. */
export function bf16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0xff) return m ? NaN : s * Infinity;
  if (e === 0) return s * m * 2 ** -133;
  return s * 2 ** (e - 127) * (1 + m / 128);
}
