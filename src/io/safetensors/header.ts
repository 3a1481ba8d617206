/**
 * Parsing and validation of a safetensors header, with the reference implementation's rules
 * (huggingface/safetensors `SafeTensors::read_metadata` / `Metadata::validate`): header length
 * at most 100 MB and inside the file, UTF-8 JSON object, known dtypes, non-negative integer
 * shapes and offsets, each tensor's byte span equal to shape x dtype size, spans contiguous from
 * byte 0 of the data section to its end (no overlap, no hole, no trailing bytes). In addition
 * to the reference, duplicate keys are rejected (JSON.parse would silently keep the last one).
 * Every error is a {@link UserError} naming the file and, where there is one, the tensor.
 */
import { UserError } from '../../errors.ts';
import { DTYPE_BITS, SUPPORTED_DTYPES, type StoredDType, type TensorInfo } from './types.ts';

/** The reference's limit on the JSON header's length in bytes. */
export const MAX_HEADER_SIZE = 100_000_000;
/** Bytes of the little-endian u64 header length that opens every file. */
export const N_LEN = 8;

/** A validated header. */
export interface ParsedHeader {
  /** Length of the JSON header in bytes (the u64 at the start of the file). */
  headerLength: number;
  /** Absolute file offset of the data section (8 + headerLength). */
  dataStart: number;
  /** `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors in data order (increasing offsets). */
  tensors: TensorInfo[];
}

const quote = (s: string): string => JSON.stringify(s);
const tensorLabel = (name: string): string => `tensor ${quote(name)}`;
const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};
const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/**
 * Read the header length from the first 8 bytes and check it against the file size.
 * @param first8 The first min(8, fileSize) bytes of the file.
 */
export function readHeaderLength(first8: Uint8Array, fileSize: number, label: string): number {
  if (fileSize < N_LEN) {
    throw new UserError(
      `${label}: not a safetensors file: ${fileSize} bytes, shorter than the 8-byte header length`,
    );
  }
  const dv = new DataView(first8.buffer, first8.byteOffset, N_LEN);
  const n = dv.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new UserError(
      `${label}: header length ${n} exceeds the format's limit of ${MAX_HEADER_SIZE} bytes (not a safetensors file?)`,
    );
  }
  const len = Number(n);
  if (N_LEN + len > fileSize) {
    throw new UserError(
      `${label}: header length ${len} runs past the end of the file (${fileSize} bytes; truncated file?)`,
    );
  }
  if (len === 0) throw new UserError(`${label}: header is empty (length 0)`);
  return len;
}

/**
 * Find a key that occurs twice in one object of the (already JSON.parse-validated) text.
 * Returns the key and the key of the object holding it (null for the top level).
 */
export function findDuplicateKey(text: string): { key: string; parent: string | null } | null {
  interface Frame {
    keys: Set<string> | null; // null for arrays
    expectKey: boolean;
    name: string | null;
  }
  const stack: Frame[] = [];
  let pendingKey: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c /* \ */) {
          escaped = true;
          j++;
        }
        j++;
      }
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key: string = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (top.keys.has(key)) return { key, parent: top.name };
        top.keys.add(key);
        top.expectKey = false;
        pendingKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push({ keys: new Set(), expectKey: true, name: pendingKey });
      pendingKey = null;
    } else if (c === 0x5b /* [ */) {
      stack.push({ keys: null, expectKey: false, name: pendingKey });
      pendingKey = null;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
      pendingKey = null;
    }
  }
  return null;
}

function parseMetadata(v: unknown, label: string): Record<string, string> {
  // The reference deserialises `__metadata__` as Option<HashMap<String, String>>: null = absent.
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) {
    throw new UserError(`${label}: "__metadata__" must be an object of string values, got ${kindOf(v)}`);
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (typeof val !== 'string') {
      throw new UserError(
        `${label}: "__metadata__" value of ${quote(k)} must be a string, got ${kindOf(val)} ${show(val)}`,
      );
    }
    // defineProperty: a key such as "__proto__" must stay an ordinary entry.
    Object.defineProperty(out, k, { value: val, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

function parseEntry(name: string, v: unknown, label: string): TensorInfo {
  const where = `${label}: ${tensorLabel(name)}`;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new UserError(`${where}: entry must be an object with dtype, shape and data_offsets, got ${kindOf(v)}`);
  }
  const e = v as Record<string, unknown>;
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!(field in e)) throw new UserError(`${where}: missing field "${field}"`);
  }
  const dtype = e.dtype;
  if (typeof dtype !== 'string' || !DTYPE_BITS.has(dtype as StoredDType)) {
    throw new UserError(
      `${where}: unknown dtype ${show(dtype)} (safetensors dtypes mor-peft reads: ${SUPPORTED_DTYPES.join(', ')})`,
    );
  }
  const shape = e.shape;
  if (!Array.isArray(shape)) throw new UserError(`${where}: "shape" must be an array, got ${show(shape)}`);
  const bad = shape.find((d) => !isIndex(d));
  if (bad !== undefined) {
    throw new UserError(
      `${where}: shape ${show(shape)} has dimension ${show(bad)}; dimensions must be non-negative integers`,
    );
  }
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || !isIndex(offs[0]) || !isIndex(offs[1])) {
    throw new UserError(
      `${where}: "data_offsets" must be [begin, end] with non-negative integers, got ${show(offs)}`,
    );
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) throw new UserError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  const dims = shape as number[];
  const bits = BigInt(DTYPE_BITS.get(dtype as StoredDType)!);
  const numel = dims.reduce((a, d) => a * BigInt(d), 1n);
  const nbits = numel * bits;
  const shapeStr = `[${dims.join(', ')}]`;
  if (nbits % 8n !== 0n) {
    throw new UserError(`${where}: shape ${shapeStr} of ${dtype} is not a whole number of bytes`);
  }
  if (nbits / 8n !== BigInt(end - begin)) {
    throw new UserError(
      `${where}: shape ${shapeStr} of ${dtype} needs ${nbits / 8n} bytes but data_offsets [${begin}, ${end}] span ${end - begin} bytes`,
    );
  }
  return {
    name,
    dtype: dtype as StoredDType,
    shape: dims.slice(),
    numel: Number(numel),
    dataOffsets: [begin, end],
    byteLength: end - begin,
  };
}

/**
 * Parse and validate the JSON header.
 * @param headerBytes The `headerLength` bytes after the length prefix.
 * @param fileSize Total file size in bytes (for span checks).
 * @param label The file's name, used in error messages.
 */
export function parseHeader(headerBytes: Uint8Array, fileSize: number, label: string): ParsedHeader {
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    // ignoreBOM: keep a BOM in the text so JSON.parse rejects it, as the reference does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw new UserError(`${label}: header is not valid UTF-8`);
  }
  if (text.charCodeAt(0) === 0xfeff) {
    throw new UserError(`${label}: header starts with a UTF-8 byte order mark, which the format does not allow`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${label}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${label}: header must be a JSON object, got ${kindOf(json)}`);
  }
  const dup = findDuplicateKey(text);
  if (dup) {
    if (dup.parent === null) {
      throw new UserError(
        dup.key === '__metadata__'
          ? `${label}: duplicate "__metadata__" in the header`
          : `${label}: duplicate tensor name ${quote(dup.key)} in the header`,
      );
    }
    throw new UserError(`${label}: duplicate key ${quote(dup.key)} in the header entry ${quote(dup.parent)}`);
  }

  const obj = json as Record<string, unknown>;
  const metadata = parseMetadata(obj.__metadata__, label);
  const tensors: TensorInfo[] = [];
  for (const [name, v] of Object.entries(obj)) {
    if (name === '__metadata__') continue;
    tensors.push(parseEntry(name, v, label));
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);

  const dataStart = N_LEN + headerLength;
  const dataSize = fileSize - dataStart;
  let prev: TensorInfo | null = null;
  let pos = 0;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (end > dataSize) {
      throw new UserError(
        `${label}: ${tensorLabel(t.name)}: data_offsets [${begin}, ${end}] run past the end of the file (data section holds ${dataSize} bytes; truncated file?)`,
      );
    }
    if (begin < pos) {
      const p = prev!;
      throw new UserError(
        `${label}: tensors ${quote(p.name)} [${p.dataOffsets.join(', ')}] and ${quote(t.name)} [${begin}, ${end}] overlap`,
      );
    }
    if (begin > pos) {
      throw new UserError(
        prev === null
          ? `${label}: hole of ${begin} bytes at the start of the data section, before ${tensorLabel(t.name)} (data_offsets [${begin}, ${end}]; the first tensor must start at 0)`
          : `${label}: hole of ${begin - pos} bytes between ${tensorLabel(prev.name)} (ends at ${pos}) and ${tensorLabel(t.name)} (starts at ${begin})`,
      );
    }
    pos = end;
    prev = t;
  }
  if (pos !== dataSize) {
    throw new UserError(
      `${label}: ${dataSize - pos} trailing bytes after the last tensor's data (tensors end at ${pos}, data section holds ${dataSize} bytes)`,
    );
  }
  return { headerLength, dataStart, metadata, tensors };
}
