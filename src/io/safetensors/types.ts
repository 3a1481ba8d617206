/**
 * safetensors data types and the host-side tensor representation.
 *
 * Format (https://github.com/huggingface/safetensors): 8-byte little-endian u64 N, then N bytes
 * of UTF-8 JSON header `{"__metadata__": {str: str}?, "<name>": {"dtype", "shape",
 * "data_offsets": [begin, end]}}` (offsets relative to the byte after the header), then the
 * tensors' raw little-endian, C-order data, contiguous, without holes.
 */

/** The dtypes mor-peft reads and writes. */
export type DType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'U8' | 'BOOL';

/** Every dtype of the reference format (listed by `inspect`; only {@link DType} can be read). */
export type StoredDType =
  | DType
  | 'F64'
  | 'C64'
  | 'I8'
  | 'I16'
  | 'U16'
  | 'U32'
  | 'U64'
  | 'F8_E5M2'
  | 'F8_E4M3'
  | 'F8_E8M0'
  | 'F8_E4M3FNUZ'
  | 'F8_E5M2FNUZ'
  | 'F6_E2M3'
  | 'F6_E3M2'
  | 'F4';

/**
 * Bits per element, in the reference's dtype order (increasing alignment). The writer sorts
 * tensors by this order descending, then by name, as the reference serializer does.
 */
export const DTYPE_BITS: ReadonlyMap<StoredDType, number> = new Map<StoredDType, number>([
  ['BOOL', 8],
  ['F4', 4],
  ['F6_E2M3', 6],
  ['F6_E3M2', 6],
  ['U8', 8],
  ['I8', 8],
  ['F8_E5M2', 8],
  ['F8_E4M3', 8],
  ['F8_E8M0', 8],
  ['F8_E4M3FNUZ', 8],
  ['F8_E5M2FNUZ', 8],
  ['I16', 16],
  ['U16', 16],
  ['F16', 16],
  ['BF16', 16],
  ['I32', 32],
  ['U32', 32],
  ['F32', 32],
  ['C64', 64],
  ['F64', 64],
  ['I64', 64],
  ['U64', 64],
]);

/** Rank of each dtype in the reference's ordering (higher = larger alignment). */
export const DTYPE_RANK: ReadonlyMap<StoredDType, number> = new Map(
  [...DTYPE_BITS.keys()].map((d, i) => [d, i] as [StoredDType, number]),
);

/** The dtypes this library can load (others are listed, not read). */
export const SUPPORTED_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16', 'I32', 'I64', 'U8', 'BOOL'];

/** Is `d` a dtype this library reads and writes? */
export function isSupportedDType(d: string): d is DType {
  return (SUPPORTED_DTYPES as readonly string[]).includes(d);
}

/** Bytes per element of a supported dtype. */
export function dtypeBytes(d: DType): number {
  return DTYPE_BITS.get(d)! / 8;
}

/** The typed array holding a tensor of each dtype on the host. */
export type HostData = Float32Array | Int32Array | BigInt64Array | Uint8Array;

/**
 * A tensor in host memory, row-major. F32 -> Float32Array, I32 -> Int32Array,
 * I64 -> BigInt64Array, U8/BOOL -> Uint8Array (BOOL values are 0 or 1). On read, F16/BF16 are
 * converted to F32 (dtype 'F32', Float32Array); to write half precision, pass F32 tensors and
 * `floatDtype`. (A tensor with dtype 'F16'/'BF16' and Float32Array data is also accepted by the
 * writer and stored in that dtype.)
 */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: HostData;
}

/** One entry of a file's header, as stored (offsets relative to the data section). */
export interface TensorInfo {
  name: string;
  dtype: StoredDType;
  shape: number[];
  /** Number of elements (product of the shape; 1 for a scalar). */
  numel: number;
  /** [begin, end) byte offsets in the data section. */
  dataOffsets: [number, number];
  /** end - begin. */
  byteLength: number;
}

/** Product of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
