/**
 * Reading safetensors files. The file is opened, its 8-byte length and JSON header read and
 * validated; each tensor's byte span is then read with `fs.readSync` at its offset into a fresh
 * buffer of exactly its size, which becomes the typed array's storage (no copy for F32, I32,
 * I64, U8, BOOL; F16/BF16 are widened into a new Float32Array). The file is never loaded whole,
 * never turned into a string, and peak memory is the tensors returned plus one tensor.
 */
import * as fs from 'node:fs';
import { UserError } from '../../errors.ts';
import { bf16ToF32Array, f16ToF32Array } from '../dtype.ts';
import { N_LEN, parseHeader, readHeaderLength, type ParsedHeader } from './header.ts';
import { SUPPORTED_DTYPES, dtypeBytes, isSupportedDType, type HostTensor, type TensorInfo } from './types.ts';

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverse each `width`-byte element in place (big-endian hosts only). */
export function swapBytesInPlace(b: Uint8Array, width: number): void {
  for (let i = 0; i + width <= b.length; i += width) {
    for (let l = i, r = i + width - 1; l < r; l++, r--) {
      const t = b[l];
      b[l] = b[r];
      b[r] = t;
    }
  }
}

/** Random access to the bytes of a file or buffer. `read` returns a fresh, exactly sized buffer. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

function fileSource(path: string): ByteSource {
  let fd: number;
  let size: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (e as Error).message;
    throw new UserError(`${path}: cannot open: ${why}`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new UserError(`${path}: is a directory, not a safetensors file`);
    size = st.size;
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
  let open = true;
  return {
    size,
    read(offset: number, length: number): Uint8Array {
      if (!open) throw new Error(`${path}: read after close`);
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        // readSync caps one call at 2 GiB; loop for larger tensors and short reads.
        const n = fs.readSync(fd, buf, done, Math.min(length - done, 0x40000000), offset + done);
        if (n === 0) {
          throw new UserError(
            `${path}: unexpected end of file at byte ${offset + done} (was it modified while being read?)`,
          );
        }
        done += n;
      }
      return buf;
    },
    close(): void {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

function bufferSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.byteLength,
    read: (offset, length) => bytes.slice(offset, offset + length),
    close: () => undefined,
  };
}

/** Turn the raw little-endian bytes of one tensor into a {@link HostTensor}. */
function decodeTensor(info: TensorInfo, raw: Uint8Array, label: string): HostTensor {
  const { dtype, numel } = info;
  const shape = info.shape.slice();
  if (!isSupportedDType(dtype)) {
    throw new UserError(
      `${label}: tensor ${JSON.stringify(info.name)} has dtype ${dtype}, which mor-peft cannot load (supported: ${SUPPORTED_DTYPES.join(', ')})`,
    );
  }
  // `raw` owns a fresh ArrayBuffer starting at offset 0, so every typed view below is aligned.
  const width = dtypeBytes(dtype);
  if (!HOST_LITTLE_ENDIAN && width > 1) swapBytesInPlace(raw, width);
  switch (dtype) {
    case 'F32':
      return { dtype, shape, data: new Float32Array(raw.buffer, raw.byteOffset, numel) };
    case 'F16':
      return { dtype: 'F32', shape, data: f16ToF32Array(new Uint16Array(raw.buffer, raw.byteOffset, numel)) };
    case 'BF16':
      return { dtype: 'F32', shape, data: bf16ToF32Array(new Uint16Array(raw.buffer, raw.byteOffset, numel)) };
    case 'I32':
      return { dtype, shape, data: new Int32Array(raw.buffer, raw.byteOffset, numel) };
    case 'I64':
      return { dtype, shape, data: new BigInt64Array(raw.buffer, raw.byteOffset, numel) };
    case 'U8':
      return { dtype, shape, data: raw };
    case 'BOOL': {
      const i = raw.findIndex((v) => v > 1);
      if (i >= 0) {
        throw new UserError(
          `${label}: tensor ${JSON.stringify(info.name)}: BOOL element ${i} has byte value ${raw[i]} (must be 0 or 1)`,
        );
      }
      return { dtype, shape, data: raw };
    }
  }
}

/**
 * An open safetensors file whose header has been read and validated; tensors are read one at a
 * time with {@link SafetensorsFile.read}. Call {@link SafetensorsFile.close} when done.
 */
export class SafetensorsFile {
  /** The file's name as given (used in error messages). */
  readonly path: string;
  /** Total size in bytes. */
  readonly fileSize: number;
  /** Length of the JSON header in bytes. */
  readonly headerLength: number;
  /** `__metadata__` (empty object when the file has none). */
  readonly metadata: Record<string, string>;
  /** Every tensor's header entry, in data order; dtype as stored (F16 stays 'F16' here). */
  readonly tensors: readonly TensorInfo[];
  private readonly source: ByteSource;
  private readonly dataStart: number;
  private readonly byName: Map<string, TensorInfo>;

  /** @internal Use {@link openSafetensors}. */
  constructor(path: string, source: ByteSource, header: ParsedHeader) {
    this.path = path;
    this.source = source;
    this.fileSize = source.size;
    this.headerLength = header.headerLength;
    this.dataStart = header.dataStart;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Tensor names in data order. */
  get names(): string[] {
    return this.tensors.map((t) => t.name);
  }

  /** The header entry of `name`, or undefined. */
  info(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  /** Does the file hold a tensor called `name`? */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Absolute byte offset of `name`'s data in the file (for memory-mapped access). */
  dataOffset(name: string): number {
    const info = this.byName.get(name);
    if (!info) throw new UserError(`${this.path}: no tensor named ${JSON.stringify(name)}`);
    return this.dataStart + info.dataOffsets[0];
  }

  /** Read one tensor (F16/BF16 converted to F32). Throws a UserError for an unknown name. */
  read(name: string): HostTensor {
    const info = this.byName.get(name);
    if (!info) throw new UserError(`${this.path}: no tensor named ${JSON.stringify(name)}`);
    const raw = this.source.read(this.dataStart + info.dataOffsets[0], info.byteLength);
    return decodeTensor(info, raw, this.path);
  }

  /** Read every tensor, in data order. */
  readAll(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const t of this.tensors) out.set(t.name, this.read(t.name));
    return out;
  }

  /** Release the file descriptor (idempotent). */
  close(): void {
    this.source.close();
  }
}

function openSource(source: ByteSource, label: string): SafetensorsFile {
  try {
    const first = source.read(0, Math.min(N_LEN, source.size));
    const n = readHeaderLength(first, source.size, label);
    const header = parseHeader(source.read(N_LEN, n), source.size, label);
    return new SafetensorsFile(label, source, header);
  } catch (e) {
    source.close();
    throw e;
  }
}

/**
 * Open a safetensors file: reads and validates only the header (cheap for large files).
 * Throws a {@link UserError} naming the file (and tensor) when the file is not valid.
 */
export function openSafetensors(path: string): SafetensorsFile {
  return openSource(fileSource(path), path);
}

/** Result of {@link readSafetensors}: metadata and every tensor, in file order. */
export interface SafetensorsContents {
  metadata: Record<string, string>;
  tensors: Map<string, HostTensor>;
}

/** Read a whole safetensors file (F16/BF16 converted to F32). */
export function readSafetensors(path: string): SafetensorsContents {
  const f = openSafetensors(path);
  try {
    return { metadata: f.metadata, tensors: f.readAll() };
  } finally {
    f.close();
  }
}

/**
 * Open safetensors bytes already in memory, as {@link openSafetensors} opens a file: the header
 * is validated, tensors are decoded one at a time (each a copy of its span). `label` names the
 * bytes in error messages. Closing is optional (nothing to release).
 */
export function openSafetensorsBytes(bytes: Uint8Array, label = '<buffer>'): SafetensorsFile {
  return openSource(bufferSource(bytes), label);
}

/** Parse safetensors bytes already in memory (same validation as {@link readSafetensors}). */
export function parseSafetensors(bytes: Uint8Array, label = '<buffer>'): SafetensorsContents {
  const f = openSafetensorsBytes(bytes, label);
  return { metadata: f.metadata, tensors: f.readAll() };
}
