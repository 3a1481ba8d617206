/**
 * The size policy applied to a training config, before the model is loaded: resolves
 * `gradientCheckpointing: 'auto'` (off, or the fewest last layers that make the run fit) and
 * the loss chunk size, and refuses a run that cannot fit with one line naming the knobs (see
 * src/models/memoryPlan.ts).
 */
import { backendInfo } from '../backend/tf.ts';
import { nativeAttentionActive } from '../backend/attentionKernels.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { defaultLossChunkRows } from '../models/llama/chunkedLoss.ts';
import {
  adapterTrainableParams, autoGradientCheckpointing, checkRunFits, planRun, type MemoryLimits, type MemoryPlan,
} from '../models/memoryPlan.ts';
import type { TrainConfig } from './config.ts';

/** Where the frozen weights will live (the loader decides; the plan needs it first). */
export interface WeightPlacement {
  /** Frozen weights held off the wasm heap by the native store. Default false. */
  weightsOffHeap?: boolean;
  /** Bytes per value in the checkpoint files (bf16 2, f32 4). Default 4. */
  fileDtypeBytes?: number;
}

/** What {@link sizeTrainingRun} decided. */
export interface TrainingSize {
  plan: MemoryPlan;
  /** Every layer (true), none (false), or the last n layers. */
  gradientCheckpointing: boolean | number;
  lossChunkSize: number;
}

/** What the size policy reads of a training config (`mor train`'s, or an experiment's train settings). */
export type SizedRun = Pick<TrainConfig, 'batchSize' | 'maxLength' | 'adapter' | 'gradientCheckpointing' | 'lossChunkSize'>;

/** Plan a training run; throws a one-line UserError when it cannot fit. */
export function sizeTrainingRun(config: SizedRun, model: LlamaConfig, placement: WeightPlacement = {}, limits: MemoryLimits = {}): TrainingSize {
  const shape = {
    model,
    batchSize: config.batchSize,
    maxLength: config.maxLength,
    trainableParams: trainableOrOne(model, config),
    lossChunkRows: config.lossChunkSize ?? defaultLossChunkRows(model.vocabSize),
    weightsOffHeap: placement.weightsOffHeap ?? false,
    fileDtypeBytes: placement.fileDtypeBytes ?? 4,
    fusedKernels: nativeAttentionActive(),
    // The pure-wasm matmul keeps W^T of frozen weights (MOR_TRANSPOSE_CACHE=0 turns it off).
    transposedWeights: backendInfo().matmulPath === 'wasm' && process.env.MOR_TRANSPOSE_CACHE !== '0',
  };
  const gradientCheckpointing = config.gradientCheckpointing === 'auto' ? autoGradientCheckpointing(shape, limits) : config.gradientCheckpointing;
  const plan = planRun({ ...shape, gradientCheckpointing });
  checkRunFits(plan, limits);
  return { plan, gradientCheckpointing, lossChunkSize: shape.lossChunkRows };
}

/**
 * The adapter's trainable count by the closed formulas; 1 (still a training step) when they
 * cannot say, e.g. targets that match no layer: the adapter injection reports that itself.
 */
function trainableOrOne(model: LlamaConfig, config: SizedRun): number {
  try {
    return adapterTrainableParams(model, config.adapter);
  } catch {
    return 1;
  }
}
