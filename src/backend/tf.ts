/**
 * The one place that owns TensorFlow.js global state: the backend choice.
 *
 * We run on `@tensorflow/tfjs-backend-wasm` (SIMD, single-threaded in Node; see
 * shared/design/FACTS.md), loading its .wasm files from node_modules so nothing is
 * fetched. An optional native BLAS kernel (src/backend/blas.ts) replaces the wasm
 * backend's BatchMatMul when the addon is built and loads. Slow or wrong wasm kernels
 * (Identity, Slice, Unpack, _FusedMatMul) are replaced at init (src/backend/wasmKernels.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
// Chained ops (`x.square()`) are opt-in in tfjs-core; register them once here.
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops.js';
// Gradients of the built-in ops are also opt-in.
import '@tensorflow/tfjs-core/dist/register_all_gradients.js';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { installWasmKernelFixes } from './wasmKernels.ts';

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
  /** OpenBLAS build and core (e.g. `OpenBLAS 0.3.21 ... Haswell`), on the BLAS path. */
  blasConfig?: string;
}

export interface InitOptions {
  /**
   * Force a matmul path. Default: `MOR_MATMUL` from the environment (`wasm` or `blas`),
   * else BLAS when available. Once the backend is initialised, a different value is an
   * error (switch paths with {@link setMatmulPath}).
   */
  matmul?: 'wasm' | 'blas' | 'auto';
  /**
   * Print which path is active (once per process). Default: `MOR_QUIET` unset. Only the call
   * that initialises the backend announces; later calls ignore it.
   */
  announce?: boolean;
}

type MatmulRequest = NonNullable<InitOptions['matmul']>;

let wasmReady: Promise<void> | undefined;
let initPromise: Promise<BackendInfo> | undefined;
/** The matmul path requested by the call that initialised the backend (or by setMatmulPath). */
let requested: MatmulRequest | undefined;
/** Which call initialised the backend: named in the conflict error. */
let initialisedBy = '';
let info: BackendInfo | undefined;

/**
 * Initialise the backend once per process; later calls return the same info. Every async
 * entry point that needs tensors (`loadModel`, `generate`, `train`, `runTraining`, ...)
 * calls it, so calling it yourself is needed only to choose options, or before building
 * tensors synchronously (`createRandomModel`, `tf.*`). A later call whose `matmul` differs
 * from the active one rejects with a {@link UserError}; the same options are a no-op.
 */
export function initBackend(options: InitOptions = {}): Promise<BackendInfo> {
  if (initPromise) {
    if (options.matmul !== undefined && options.matmul !== requested) {
      return Promise.reject(new UserError(`initBackend({ matmul: '${options.matmul}' }): the backend is already initialised with matmul '${requested}' (${initialisedBy}); pass the same options, or switch with setMatmulPath()`));
    }
    return initPromise;
  }
  let req: MatmulRequest;
  try {
    req = options.matmul ?? envMatmul();
  } catch (e) {
    return Promise.reject(e);
  }
  requested = req;
  initialisedBy = options.matmul !== undefined ? 'set by an earlier initBackend call'
    : process.env.MOR_MATMUL ? 'from MOR_MATMUL' : 'the default';
  const p = doInit(req, options.announce ?? !process.env.MOR_QUIET);
  initPromise = p;
  // A failed init (e.g. matmul 'blas' without the addon) may be retried with other options.
  p.catch(() => {
    if (initPromise === p) {
      initPromise = undefined;
      requested = undefined;
    }
  });
  return p;
}

/** Info of the initialised backend; throws if {@link initBackend} has not completed. */
export function backendInfo(): BackendInfo {
  if (!info) throw new Error('initBackend() has not completed');
  return info;
}

/**
 * For synchronous entry points that create tensors: a one-line {@link UserError} instead of
 * tfjs' "backend has not yet been initialized" when no backend is ready.
 */
export function requireBackend(what: string): void {
  if (tf.engine().backendName == null) {
    throw new UserError(`${what} creates tensors and the backend is not initialised: await initBackend() first (async entry points such as loadModel do it for you)`);
  }
}

/** Load the wasm module once (no options: the matmul path is chosen afterwards). */
function initWasm(): Promise<void> {
  wasmReady ??= (async () => {
    const require = createRequire(import.meta.url);
    const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    setWasmPaths(path.join(wasmDir, 'dist') + path.sep);
    // The Emscripten glue adds process handlers that rethrow any uncaught error from inside
    // its one-line minified source, so Node prints ~20 kB of glue above the real error.
    // Remove exactly the handlers it added; Node's default reporting is what we want.
    const events = ['uncaughtException', 'unhandledRejection'];
    const before = events.map((e) => process.listeners(e as 'uncaughtException') as unknown[]);
    try {
      await tf.setBackend('wasm');
      await tf.ready();
    } finally {
      events.forEach((e, i) => {
        for (const l of process.listeners(e as 'uncaughtException')) {
          if (!before[i].includes(l)) process.removeListener(e, l);
        }
      });
    }
    installWasmKernelFixes();
  })();
  return wasmReady;
}

async function doInit(requested: MatmulRequest, announce: boolean): Promise<BackendInfo> {
  await initWasm();
  const blasMod = await import('./blas.ts');
  info = applyMatmulPath(requested, blasMod);
  if (announce) process.stderr.write(`mor: matmul backend: ${describeBackend(info)}\n`);
  return info;
}

type BlasModule = typeof import('./blas.ts');

function applyMatmulPath(requested: 'wasm' | 'blas' | 'auto', blasMod: BlasModule): BackendInfo {
  const backend = tf.getBackend();
  if (requested === 'wasm') {
    blasMod.disableBlas();
    return { backend, matmulPath: 'wasm', blasReason: 'disabled (MOR_MATMUL=wasm)', threads: 1 };
  }
  const blas = blasMod.enableBlas();
  if (!blas.ok) {
    if (requested === 'blas') {
      throw new UserError(`MOR_MATMUL=blas but the OpenBLAS kernel is unavailable: ${blas.reason}`);
    }
    return { backend, matmulPath: 'wasm', blasReason: blas.reason, threads: 1 };
  }
  return { backend, matmulPath: 'wasm+blas', threads: blas.threads, blasConfig: blas.config };
}

/** One-line description of the active path, as announced at start-up. */
export function describeBackend(i: BackendInfo): string {
  return i.matmulPath === 'wasm+blas'
    ? `OpenBLAS, ${i.threads} thread${i.threads === 1 ? '' : 's'}`
    : `pure wasm (${i.blasReason})`;
}

/**
 * Switch the matmul path after {@link initBackend} (benchmarks and tests compare both
 * paths in one process). `blas` throws when the kernel is unavailable; `auto` falls back.
 * Tensors stay valid: both paths share the wasm heap.
 */
export async function setMatmulPath(path: MatmulRequest): Promise<BackendInfo> {
  await initBackend({ announce: false });
  info = applyMatmulPath(path, await import('./blas.ts'));
  requested = path;
  initialisedBy = 'set by setMatmulPath';
  initPromise = Promise.resolve(info);
  return info;
}

function envMatmul(): MatmulRequest {
  const v = (process.env.MOR_MATMUL ?? 'auto').toLowerCase();
  if (v === 'wasm' || v === 'blas' || v === 'auto') return v;
  throw new UserError(`MOR_MATMUL must be wasm, blas or auto (got "${process.env.MOR_MATMUL}")`);
}
