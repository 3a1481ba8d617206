/**
 * The thread count of tfjs-wasm's threaded build (browsers, cross-origin isolated pages only;
 * tfjs-wasm is single-threaded in Node).
 *
 * Why more than `setThreadsCount`: tfjs-backend-wasm 4.22 caps its XNNPACK thread pool at
 * half of `navigator.hardwareConcurrency` (its C++ `init_with_threads_count` assumes two
 * hyper-threads per core), read once while the module instantiates. On a 2-vCPU machine the
 * threaded build therefore runs on one thread, whatever `setThreadsCount` asked. To honour an
 * explicit request above that cap, `navigator.hardwareConcurrency` is shadowed by an own
 * property of the navigator object for the duration of the backend's start-up only, then
 * removed again.
 */
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { UserError } from '../errors.ts';

/**
 * Run `start` (which instantiates the wasm module) with `threads` XNNPACK threads when the
 * threaded build loads; `undefined` keeps tfjs' default (half the logical cores, 1 to 8).
 */
export async function startWithWasmThreads<T>(threads: number | undefined, start: () => Promise<T>): Promise<T> {
  if (threads === undefined) return start();
  if (!Number.isInteger(threads) || threads < 1 || threads > 8) {
    throw new UserError(`initBackend({ wasmThreads: ${threads} }): expected an integer from 1 to 8 (tfjs-wasm starts 8 workers)`);
  }
  setThreadsCount(threads);
  const nav = globalThis.navigator as { hardwareConcurrency?: number } | undefined;
  const logical = nav?.hardwareConcurrency ?? 1;
  if (!nav || Math.floor(logical / 2) >= threads) return start();
  Object.defineProperty(nav, 'hardwareConcurrency', { value: 2 * threads, configurable: true });
  try {
    return await start();
  } finally {
    delete nav.hardwareConcurrency;
  }
}
