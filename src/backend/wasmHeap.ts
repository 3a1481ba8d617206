/**
 * The parts of tfjs-backend-wasm's (untyped, internal) BackendWasm that the project's own
 * kernels use: the heap, where each tensor lives in it, and output allocation.
 */
import type * as tfc from '@tensorflow/tfjs-core';

/** The subset of tfjs-backend-wasm's BackendWasm that the replacement kernels touch. */
export interface WasmBackend {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } };
  makeOutput(shape: number[], dtype: tfc.DataType): tfc.TensorInfo;
  incRef(dataId: object): void;
  /** How many tensors share this memory (variables and views included). */
  refCount(dataId: object): number;
  disposeData(dataId: object): boolean;
}

/** Byte offset of tensor `t` in the wasm heap. */
export function heapOffset(backend: WasmBackend, t: tfc.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset;
}
