/**
 * safetensors I/O (https://github.com/huggingface/safetensors): the entry point. Implementation
 * in `./safetensors/` — types, header validation, reader, writer.
 *
 * ```ts
 * writeSafetensors('adapter.safetensors', { 'a.weight': { dtype: 'F32', shape: [2, 3], data } },
 *   { metadata: { format: 'pt' }, floatDtype: 'BF16' });
 * const { metadata, tensors } = readSafetensors('adapter.safetensors'); // BF16 -> F32
 * const f = openSafetensors('model.safetensors'); // header only
 * try { for (const t of f.tensors) use(f.read(t.name)); } finally { f.close(); }
 * ```
 */
export type { DType, StoredDType, HostTensor, HostData, TensorInfo } from './safetensors/types.ts';
export { SUPPORTED_DTYPES, isSupportedDType, dtypeBytes, shapeSize } from './safetensors/types.ts';
export { MAX_HEADER_SIZE } from './safetensors/header.ts';
export {
  SafetensorsFile,
  openSafetensors,
  openSafetensorsBytes,
  readSafetensors,
  parseSafetensors,
  type SafetensorsContents,
} from './safetensors/read.ts';
export {
  writeSafetensors,
  serializeSafetensors,
  type WriteSafetensorsOptions,
  type TensorsInput,
  type LazyF32Tensor,
} from './safetensors/write.ts';
