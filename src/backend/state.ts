/**
 * Everything the backend has set up in this process, in one object: the tfjs backend, the
 * active matmul path, the BLAS kernels and their threads, and which of the project's own
 * kernels are registered. tfjs keeps its kernel registry globally, so this state is
 * process-wide too; it records what has been done to that registry (kernels are registered
 * once and never removed, except BLAS's swap of the two matmul kernels).
 *
 * Only the files of src/backend/ write it, each its own fields (named below); code elsewhere
 * asks their functions (`backendInfo`, `blasActive`, `weightStoreAvailable`, ...).
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { BlasAddon, SgemmKernel } from './blas.ts';
import type { BackendInfo, InitOptions } from './tf.ts';

/** A matmul path as requested (`auto`: BLAS when available). */
export type MatmulRequest = NonNullable<InitOptions['matmul']>;

/** The initialisation started by the first initBackend call (or last set by setMatmulPath). */
export interface InitRecord {
  /** Resolves to {@link BackendState.info}; later calls with the same options return it. */
  promise: Promise<BackendInfo>;
  /** The matmul path asked for; a later initBackend asking another one is an error. */
  matmul: MatmulRequest;
  /** Where `matmul` came from, for that error (`from MOR_MATMUL`, `the default`, ...). */
  by: string;
  /** The browser's wasm file locations asked for; another value later is an error. */
  wasmPaths: InitOptions['wasmPaths'];
  wasmThreads?: number;
}

/** While the OpenBLAS kernels are registered (blas.ts). */
export interface BlasRecord {
  /** Threads OpenBLAS runs with (`MOR_BLAS_THREADS`, else the cores). */
  threads: number;
  /** OpenBLAS build and core. */
  config: string;
  /** Which code runs the products of more than two rows. */
  sgemm: SgemmKernel;
}

export interface BackendState {
  /** tf.ts: loading the wasm module and installing the kernel fixes; shared by every init. */
  wasmLoad?: Promise<void>;
  /** tf.ts: set while an initialisation is running or has succeeded (a failed one clears it). */
  init?: InitRecord;
  /** tf.ts: the backend is ready and this path active; set by a completed init or setMatmulPath. */
  info?: BackendInfo;
  /** wasmKernels.ts: the slow or wrong tfjs-wasm kernels are replaced. */
  wasmFixesInstalled: boolean;
  /** blas.ts: the native addon once loaded, or why it could not be (it is tried once). */
  addon?: BlasAddon;
  addonError?: string;
  /**
   * blas.ts: the wasm BatchMatMul and _FusedMatMul kernels that BLAS replaces, kept to put
   * back on the pure-wasm path.
   */
  wasmMatmulKernels?: tfc.KernelConfig[];
  /**
   * blas.ts: set while the OpenBLAS kernels are registered. matmul.ts then passes transposes
   * and batches straight to the kernel; otherwise it transposes explicitly (see there).
   */
  blas?: BlasRecord;
  /** rankKernels.ts: MoR's native rank-expansion kernels are registered (they stay so). */
  rankKernels: boolean;
  /** morLayerKernels.ts: the fused MoR adapter kernels are registered (they stay so). */
  morLayerKernels: boolean;
  /** lossKernels.ts: the native fused cross-entropy kernels are registered (they stay so). */
  lossKernels: boolean;
  /** attentionKernels.ts: the native fused attention kernels are registered (they stay so). */
  attentionKernels: boolean;
  /** layerKernels.ts: the native RMSNorm, SwiGLU and rope kernels are registered (they stay so). */
  layerKernels: boolean;
  /** optimizerKernels.ts: the addon's optimizer passes (AdamW, tensor statistics) are available (they stay so). */
  optimizerKernels: boolean;
  /** weightStore.ts: the stored-weight matmul and gather kernels are registered. */
  storeKernels: boolean;
  /**
   * weightStore.ts: largest float32 block of a stored weight converted at once (0: the
   * addon's default); tests set it small to exercise the block loop.
   */
  storeBlockFloats: number;
}

/** The one backend state of this process. */
export const state: BackendState = {
  wasmFixesInstalled: false,
  rankKernels: false,
  morLayerKernels: false,
  lossKernels: false,
  attentionKernels: false,
  layerKernels: false,
  optimizerKernels: false,
  storeKernels: false,
  storeBlockFloats: 0,
};
