/**
 * The causal-LM loss of one collated {@link Batch}, as every training loop here computes it
 * (the training session behind `mor train`, `demo` and `experiment`; the browser page's worker),
 * and the number of tokens that loss is taken over (the trainer's micro-batch weight).
 */
import { tf } from '../backend/tf.ts';
import { countTargets, type Batch } from '../data/batch.ts';
import type { ForwardContext } from '../nn/context.ts';
import type { LlamaForCausalLM, LossOptions } from '../models/llama/model.ts';

/** Memory knobs of the loss (see memory.ts: `sizeTrainingRun`). */
export type LossMemory = Pick<LossOptions, 'gradientCheckpointing' | 'lossChunkSize'>;

/** Number of tokens that get a loss in a batch (per-row shift excluded, as the model's loss). */
export function batchTargets(b: Batch): number {
  let n = 0;
  for (let r = 0; r < b.batchSize; r++) n += countTargets(b.labels.subarray(r * b.seqLen, (r + 1) * b.seqLen));
  return n;
}

/** Causal-LM loss of one batch (mean over target tokens), for the trainer's lossFn. */
export function batchLoss(
  model: LlamaForCausalLM,
  b: Batch,
  ctx: ForwardContext,
  reduction: 'mean' | 'sum' = 'mean',
  memory: LossMemory = {},
): tf.Scalar {
  // No tidy here: auxiliary losses pushed to ctx must outlive this call (the trainer sums them).
  const ids = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32'); // [B, T]
  const labels = tf.tensor2d(b.labels, [b.batchSize, b.seqLen], 'int32');
  const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen], 'int32');
  try {
    const { gradientCheckpointing, lossChunkSize } = memory;
    return model.loss(ids, labels, { attentionMask: mask, ctx, reduction, gradientCheckpointing, lossChunkSize });
  } finally {
    ids.dispose();
    labels.dispose();
    mask.dispose();
  }
}
