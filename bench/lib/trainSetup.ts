/**
 * What both sides of our training benchmark share (bench/lib/trainRun.ts, one kind per process;
 * bench/lib/trainPair.ts, LoRA and MoR in one process): each kind's adapter and the fixed batch
 * fed to every update.
 */
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import type { Batch } from '../../src/data/batch.ts';
import type { ResumableIterator } from '../../src/train/trainer.ts';

const MLP = ['gate_proj', 'up_proj', 'down_proj'];
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', ...MLP];

/** The benchmark's adapter of each kind (routers without load-balance loss: the PyTorch twins have none). */
export function benchAdapter(kind: string, r: number, n: number): AdapterConfigInput {
  switch (kind) {
    case 'lora':
      return { kind, r, alpha: 2 * r, targetModules: MLP };
    case 'mor':
    case 'moelora':
      return { kind, r, alpha: 2 * r, numExperts: n, loadBalanceCoef: 0, targetModules: MLP } as AdapterConfigInput;
    case 'full':
      return { kind, targetModules: ALL };
    default:
      throw new Error(`unknown kind ${kind}`);
  }
}

/** The benchmark's batch: `batch` rows of `seq` token ids spread over the vocabulary, every position a label. */
export function benchBatch(batch: number, seq: number, vocabSize: number): Batch {
  const tokens = batch * seq;
  const ids = Int32Array.from({ length: tokens }, (_, i) => ((i % seq) * 7919 + 13 + 101 * Math.floor(i / seq)) % vocabSize);
  return { inputIds: ids, labels: ids, attentionMask: new Int32Array(tokens).fill(1), batchSize: batch, seqLen: seq, tasks: [] };
}

/** The same batch forever (the benchmark times steps, not learning). */
export function fixedBatches(b: Batch): ResumableIterator<Batch> {
  return { next: () => b, getState: () => 0, setState: () => {} };
}
