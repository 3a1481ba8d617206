/**
 * Backprop keeps less: for ops whose tfjs gradient reads only the *shapes* of the inputs it
 * saves, the tape keeps a shape record instead of the tensor, so the buffer is freed as soon as
 * the forward is done with it.
 *
 * tfjs' gradient configs of Reshape, Add, Sub, Mean, Sum, Concat and Slice ask the engine to
 * save their inputs, but their gradFuncs read only `shape` (and `rank`) of what was saved
 * (tfjs-core 4.22 `dist/gradients/*_grad.js`). Saving a tensor keeps its heap buffer alive
 * until the backward pass; on a LoRA step of the SmolLM-135M shape (6 layers, 4 x 256) the
 * saved inputs of these ops were ~0.5 GB of the ~1 GB the forward kept (`bench:train`). tfjs has
 * no option for this, so the engine's two methods that choose and keep the saved tensors are
 * wrapped (tfjs-core is pinned; test/backend/shapeOnlySaves.test.ts checks both gradients and
 * freed memory). Gradients are unchanged bit for bit: the same gradFuncs run on the same shapes.
 */
import * as tfc from '@tensorflow/tfjs-core';

/** Kernels whose registered gradient uses only the saved tensors' shapes. */
export const SHAPE_ONLY_GRADIENTS: readonly string[] = [tfc.Reshape, tfc.Add, tfc.Sub, tfc.Mean, tfc.Sum, tfc.Concat, tfc.Slice];

/** What the tape keeps for such an input: its shape, rank, size and dtype, nothing to free. */
class ShapeRecord {
  readonly shape: number[];
  readonly rank: number;
  readonly size: number;
  readonly dtype: tfc.DataType;
  readonly isDisposed = false;
  constructor(t: tfc.Tensor) {
    this.shape = t.shape.slice();
    this.rank = t.rank;
    this.size = t.size;
    this.dtype = t.dtype;
  }
  dispose(): void {}
}

interface EngineInternals {
  getTensorsForGradient(kernelName: string, inputs: unknown, outputs: tfc.Tensor[]): tfc.Tensor[];
  saveTensorsForBackwardMode(tensors: tfc.Tensor[]): tfc.Tensor[];
}

type Methods = Pick<EngineInternals, 'getTensorsForGradient' | 'saveTensorsForBackwardMode'>;
let originals: Methods | undefined;

/**
 * Install on the engine (idempotent); `false` puts tfjs' own methods back (the tests compare
 * both ways).
 */
export function setShapeOnlySaves(on: boolean): void {
  const engine = tfc.engine() as unknown as EngineInternals;
  if (!on) {
    if (originals) {
      delete (engine as Partial<EngineInternals>).getTensorsForGradient;
      delete (engine as Partial<EngineInternals>).saveTensorsForBackwardMode;
    }
    originals = undefined;
    return;
  }
  if (originals) return;
  for (const m of ['getTensorsForGradient', 'saveTensorsForBackwardMode'] as const) {
    if (typeof engine[m] !== 'function') throw new Error(`tfjs engine has no ${m}: shapeOnlySaves needs tfjs-core 4.22`);
  }
  // The wrappers are instance properties shadowing the prototype's methods; deleting them
  // (`false`) restores tfjs'. Refuse to stack on someone else's wrapper.
  const own = Object.getOwnPropertyNames(engine);
  if (own.includes('getTensorsForGradient') || own.includes('saveTensorsForBackwardMode')) {
    throw new Error('tfjs engine methods are already wrapped by someone else');
  }
  originals = {
    getTensorsForGradient: engine.getTensorsForGradient,
    saveTensorsForBackwardMode: engine.saveTensorsForBackwardMode,
  };
  const choose = originals.getTensorsForGradient.bind(engine);
  const keep = originals.saveTensorsForBackwardMode.bind(engine);
  const only = new Set(SHAPE_ONLY_GRADIENTS);
  engine.getTensorsForGradient = (kernelName, inputs, outputs) => {
    const tensors = choose(kernelName, inputs, outputs);
    return only.has(kernelName) ? (tensors.map((t) => new ShapeRecord(t)) as unknown as tfc.Tensor[]) : tensors;
  };
  engine.saveTensorsForBackwardMode = (tensors) => {
    if (!tensors.some((t) => t instanceof ShapeRecord)) return keep(tensors);
    return tensors.map((t) => (t instanceof ShapeRecord ? t : keep([t])[0]));
  };
}

/** Whether the tape keeps shape records for {@link SHAPE_ONLY_GRADIENTS}. */
export function shapeOnlySavesOn(): boolean {
  return originals !== undefined;
}
