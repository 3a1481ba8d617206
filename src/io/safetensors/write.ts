/**
 * Writing safetensors files the way the reference serializer (huggingface/safetensors
 * `prepare`/`serialize_to_file`) does: tensors sorted by dtype alignment (descending) then by
 * name, laid out contiguously from offset 0 in that order; a compact JSON header with
 * `__metadata__` first and each entry as {"dtype","shape","data_offsets"}; the header padded with
 * spaces to a multiple of 8 bytes; little-endian data. Files are written atomically (temp file,
 * fsync, rename) one tensor at a time, so no second copy of the whole file is held in memory.
 */
import { UserError } from '../../errors.ts';
import { writeChunksAtomicSync } from '../atomic.ts';
import { f32ToBf16Array, f32ToF16Array } from '../dtype.ts';
import { MAX_HEADER_SIZE, N_LEN } from './header.ts';
import { swapBytesInPlace } from './read.ts';
import { DTYPE_RANK, dtypeBytes, isSupportedDType, shapeSize, type DType, type HostTensor } from './types.ts';

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Written as `__metadata__` (string -> string only, as the format requires). */
  metadata?: Record<string, string>;
  /**
   * Storage dtype for tensors whose dtype is 'F32' (default 'F32'): 'F16' or 'BF16' round each
   * value to nearest, ties to even; NaN and +-Inf are preserved, overflow becomes +-Inf.
   */
  floatDtype?: 'F32' | 'F16' | 'BF16';
}

/**
 * A float32 tensor whose values are produced only when the writer reaches it (one at a time):
 * big models are written without holding every tensor in memory.
 */
export interface LazyF32Tensor {
  dtype: 'F32';
  shape: number[];
  read: () => Float32Array;
}

/** Tensors to write: a Map (or a plain object) from name to tensor. */
export type TensorsInput = Map<string, HostTensor | LazyF32Tensor> | Record<string, HostTensor | LazyF32Tensor>;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const utf8 = new TextEncoder();

interface Planned {
  name: string;
  stored: DType;
  shape: number[];
  byteLength: number;
  tensor: HostTensor | LazyF32Tensor;
}

const EXPECTED_ARRAY: Record<DType, string> = {
  F32: 'Float32Array',
  F16: 'Float32Array',
  BF16: 'Float32Array',
  I32: 'Int32Array',
  I64: 'BigInt64Array',
  U8: 'Uint8Array',
  BOOL: 'Uint8Array',
};

function dataMatches(dtype: DType, data: unknown): boolean {
  switch (dtype) {
    case 'F32':
    case 'F16':
    case 'BF16':
      return data instanceof Float32Array;
    case 'I32':
      return data instanceof Int32Array;
    case 'I64':
      return data instanceof BigInt64Array;
    case 'U8':
    case 'BOOL':
      return data instanceof Uint8Array;
  }
}

function checkTensor(name: string, t: HostTensor | LazyF32Tensor, floatDtype: DType): Planned {
  const where = `tensor ${JSON.stringify(name)}`;
  if (name === '__metadata__') throw new UserError(`cannot write a tensor named "__metadata__" (reserved by the format)`);
  if (!t || typeof t !== 'object') throw new Error(`${where}: not a HostTensor`);
  if (!isSupportedDType(t.dtype)) throw new Error(`${where}: unsupported dtype ${JSON.stringify(t.dtype)}`);
  if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new Error(`${where}: shape ${JSON.stringify(t.shape)} must be non-negative integers`);
  }
  const numel = shapeSize(t.shape);
  if ('read' in t) {
    if (t.dtype !== 'F32' || typeof t.read !== 'function') throw new Error(`${where}: a lazy tensor must be F32 with a read()`);
  } else if (!dataMatches(t.dtype, t.data)) {
    throw new Error(`${where}: dtype ${t.dtype} needs a ${EXPECTED_ARRAY[t.dtype]}, got ${t.data?.constructor?.name}`);
  } else if (t.data.length !== numel) {
    throw new Error(`${where}: shape [${t.shape.join(', ')}] has ${numel} elements but data has ${t.data.length}`);
  }
  const stored: DType = t.dtype === 'F32' ? floatDtype : t.dtype;
  return { name, stored, shape: t.shape.slice(), byteLength: numel * dtypeBytes(stored), tensor: t };
}

/** Bytes of one tensor as stored (little-endian), converting F32 -> F16/BF16 when asked. */
function tensorBytes(p: Planned): Uint8Array {
  const data = 'read' in p.tensor ? p.tensor.read() : p.tensor.data;
  if (data.length !== shapeSize(p.shape)) {
    throw new Error(`tensor ${JSON.stringify(p.name)}: shape [${p.shape.join(', ')}] has ${shapeSize(p.shape)} elements but read() gave ${data.length}`);
  }
  let words: ArrayBufferView;
  if (p.stored === 'F16') words = f32ToF16Array(data as Float32Array);
  else if (p.stored === 'BF16') words = f32ToBf16Array(data as Float32Array);
  else if (p.stored === 'BOOL' && (data as Uint8Array).some((v) => v > 1)) {
    words = (data as Uint8Array).map((v) => (v ? 1 : 0)); // normalise truthy bytes to 1
  } else words = data;
  let bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const width = dtypeBytes(p.stored);
  if (!HOST_LITTLE_ENDIAN && width > 1) {
    bytes = bytes.slice();
    swapBytesInPlace(bytes, width);
  }
  return bytes;
}

/** Validate inputs, order the tensors as the reference does, and build the padded header. */
function plan(tensors: TensorsInput, opts: WriteSafetensorsOptions): { header: Uint8Array; entries: Planned[] } {
  const floatDtype = opts.floatDtype ?? 'F32';
  if (!['F32', 'F16', 'BF16'].includes(floatDtype)) {
    throw new UserError(`floatDtype must be F32, F16 or BF16, got ${JSON.stringify(floatDtype)}`);
  }
  const pairs = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  // Names compare by UTF-8 bytes, as Rust's String ordering does (differs from UTF-16 order).
  const keyed = pairs.map(([name, t]) => {
    const e = checkTensor(name, t, floatDtype);
    return { e, rank: DTYPE_RANK.get(e.stored)!, bytes: utf8.encode(name) };
  });
  keyed.sort((a, b) => b.rank - a.rank || compareBytes(a.bytes, b.bytes));
  const entries = keyed.map((k) => k.e);

  const parts: string[] = [];
  if (opts.metadata !== undefined) {
    const kv = Object.entries(opts.metadata).map(([k, v]) => {
      if (typeof v !== 'string') {
        throw new UserError(`metadata value of ${JSON.stringify(k)} must be a string, got ${typeof v}`);
      }
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  let offset = 0;
  for (const e of entries) {
    const end = offset + e.byteLength;
    parts.push(
      `${JSON.stringify(e.name)}:{"dtype":"${e.stored}","shape":[${e.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.byteLength / N_LEN) * N_LEN;
  if (padded > MAX_HEADER_SIZE) {
    throw new UserError(`safetensors header would be ${padded} bytes, over the format's limit of ${MAX_HEADER_SIZE}`);
  }
  const header = new Uint8Array(N_LEN + padded).fill(0x20, N_LEN + json.byteLength);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, N_LEN);
  return { header, entries };
}

/** Serialize tensors to safetensors bytes in memory (see {@link writeSafetensors}). */
export function serializeSafetensors(tensors: TensorsInput, opts: WriteSafetensorsOptions = {}): Uint8Array {
  const { header, entries } = plan(tensors, opts);
  const total = header.byteLength + entries.reduce((a, e) => a + e.byteLength, 0);
  const out = new Uint8Array(total);
  out.set(header, 0);
  let pos = header.byteLength;
  for (const e of entries) {
    out.set(tensorBytes(e), pos);
    pos += e.byteLength;
  }
  return out;
}

/**
 * Write tensors to a safetensors file, atomically (the old file, if any, is replaced only once
 * the new one is complete on disk). F32 tensors are stored as `opts.floatDtype` (default F32).
 * Tensor order and header layout follow the reference serializer byte for byte.
 */
export function writeSafetensors(path: string, tensors: TensorsInput, opts: WriteSafetensorsOptions = {}): void {
  const { header, entries } = plan(tensors, opts);
  function* chunks(): Generator<Uint8Array> {
    yield header;
    for (const e of entries) yield tensorBytes(e); // converted lazily: one tensor at a time
  }
  writeChunksAtomicSync(path, chunks());
}

/** Byte-wise order of two byte strings, as `Buffer.compare` (kept free of Node: runs in browsers). */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
