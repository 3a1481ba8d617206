/**
 * The one place that owns TensorFlow.js global state: the backend choice.
 *
 * We run on `@tensorflow/tfjs-backend-wasm` (SIMD, single-threaded in Node; see
 * shared/design/FACTS.md), loading its .wasm files from node_modules so nothing is
 * fetched. An optional native BLAS kernel (src/backend/blas.ts) replaces the wasm
 * backend's BatchMatMul when the addon is built and loads.
 */
import * as tf from '@tensorflow/tfjs-core';
// Chained ops (`x.square()`) are opt-in in tfjs-core; register them once here.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
// Gradients of the built-in ops are also opt-in.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';

export { tf };

/** Which matmul path is active after {@link initBackend}. */
export type MatmulPath = 'wasm' | 'wasm+blas';

export interface BackendInfo {
  /** tfjs backend name (always `wasm` here). */
  backend: string;
  /** `wasm+blas` when the OpenBLAS kernel is registered, `wasm` otherwise. */
  matmulPath: MatmulPath;
  /** Why BLAS is not active, when it is not. */
  blasReason?: string;
  /** Threads used by the BLAS kernel (1 on the wasm path). */
  threads: number;
}

export interface InitOptions {
  /**
   * Force a matmul path. Default: `MOR_MATMUL` from the environment (`wasm` or `blas`),
   * else BLAS when available.
   */
  matmul?: 'wasm' | 'blas' | 'auto';
  /** Print which path is active (once per process). Default: `MOR_QUIET` unset. */
  announce?: boolean;
}

let initPromise: Promise<BackendInfo> | undefined;
let info: BackendInfo | undefined;

/**
 * Initialise the backend once per process; later calls return the same info.
 * Must be awaited before any tensor op.
 */
export function initBackend(options: InitOptions = {}): Promise<BackendInfo> {
  initPromise ??= doInit(options);
  return initPromise;
}

/** Info of the initialised backend; throws if {@link initBackend} has not completed. */
export function backendInfo(): BackendInfo {
  if (!info) throw new Error('initBackend() has not completed');
  return info;
}

async function doInit(options: InitOptions): Promise<BackendInfo> {
  const require = createRequire(import.meta.url);
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  setWasmPaths(path.join(wasmDir, 'dist') + path.sep);
  await tf.setBackend('wasm');
  await tf.ready();
  const requested = options.matmul ?? envMatmul();
  const { enableBlas } = await import('./blas.ts');
  const blas = requested === 'wasm'
    ? { ok: false as const, reason: 'disabled (MOR_MATMUL=wasm)' }
    : enableBlas();
  if (requested === 'blas' && !blas.ok) {
    throw new Error(`MOR_MATMUL=blas but the OpenBLAS kernel is unavailable: ${blas.reason}`);
  }
  info = blas.ok
    ? { backend: tf.getBackend(), matmulPath: 'wasm+blas', threads: blas.threads }
    : { backend: tf.getBackend(), matmulPath: 'wasm', blasReason: blas.reason, threads: 1 };
  const announce = options.announce ?? !process.env.MOR_QUIET;
  if (announce) {
    const detail = info.matmulPath === 'wasm+blas'
      ? `OpenBLAS, ${info.threads} threads`
      : `pure wasm (${info.blasReason})`;
    process.stderr.write(`mor: matmul backend: ${detail}\n`);
  }
  return info;
}

function envMatmul(): 'wasm' | 'blas' | 'auto' {
  const v = (process.env.MOR_MATMUL ?? 'auto').toLowerCase();
  if (v === 'wasm' || v === 'blas' || v === 'auto') return v;
  throw new Error(`MOR_MATMUL must be wasm, blas or auto (got "${process.env.MOR_MATMUL}")`);
}
