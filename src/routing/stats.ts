/**
 * Router statistics for analysis: {@link RoutingStats} observes the routing weights that routed
 * adapter layers report through `ctx.routing` and keeps, per module path and per token group
 * (e.g. the task of the batch), the number of real tokens and the sum of their weights, so
 * the mean routing weight per expert is exact over any number of batches.
 * {@link routingByTask} groups them by task (the trainer, `mor routing` and the experiment call
 * it); {@link meanRoutingVectors} runs a list of batches and returns the mean routing vector per
 * layer: the fixed routing `g*` that `mergeWithRouting` (fixedRouting.ts) folds into W.
 */
import { tf } from '../backend/tf.ts';
import type { RoutingObserver, ForwardContext } from '../nn/context.ts';
import type { Module } from '../nn/module.ts';
import type { PeftModel } from '../adapters/inject.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import type { RenderedExample } from '../data/render.ts';
import { batchesOf } from '../data/batch.ts';

interface Acc {
  tokens: number;
  sum: Float64Array;
}

/** Accumulates routing weights per module path and token group. */
export class RoutingStats implements RoutingObserver {
  /** Group the next observations are filed under (set it per batch, e.g. to the task name). */
  group = 'all';
  private readonly acc = new Map<string, Map<string, Acc>>();

  record(modulePath: string, weights: tf.Tensor2D): void {
    const [t, n] = weights.shape;
    if (t === 0) return;
    const sums = tf.tidy(() => weights.sum(0).dataSync());
    let byGroup = this.acc.get(modulePath);
    if (!byGroup) this.acc.set(modulePath, (byGroup = new Map()));
    let a = byGroup.get(this.group);
    if (!a) byGroup.set(this.group, (a = { tokens: 0, sum: new Float64Array(n) }));
    a.tokens += t;
    for (let i = 0; i < n; i++) a.sum[i] += sums[i];
  }

  /** Module paths observed. */
  modulePaths(): string[] {
    return [...this.acc.keys()];
  }

  /** Groups observed (over all paths). */
  groups(): string[] {
    const s = new Set<string>();
    for (const m of this.acc.values()) for (const g of m.keys()) s.add(g);
    return [...s];
  }

  /** Real tokens observed at `modulePath` (in `group`, or all groups). */
  tokens(modulePath: string, group?: string): number {
    let n = 0;
    for (const [g, a] of this.acc.get(modulePath) ?? []) if (group === undefined || g === group) n += a.tokens;
    return n;
  }

  /** Mean routing weight per expert `[N]` at `modulePath` (in `group`, or over all groups). */
  mean(modulePath: string, group?: string): Float32Array {
    const byGroup = this.acc.get(modulePath);
    if (!byGroup) throw new Error(`no routing observed for ${modulePath}`);
    let tokens = 0;
    let sum: Float64Array | undefined;
    for (const [g, a] of byGroup) {
      if (group !== undefined && g !== group) continue;
      sum ??= new Float64Array(a.sum.length);
      for (let i = 0; i < a.sum.length; i++) sum[i] += a.sum[i];
      tokens += a.tokens;
    }
    if (!sum || tokens === 0) throw new Error(`no routing observed for ${modulePath} in group ${group}`);
    return Float32Array.from(sum, (v) => v / tokens);
  }

  /** Mean routing vectors of every observed layer (optionally of one group). */
  means(group?: string): Map<string, Float32Array> {
    const m = new Map<string, Float32Array>();
    for (const p of this.modulePaths()) if (group === undefined || this.tokens(p, group) > 0) m.set(p, this.mean(p, group));
    return m;
  }

  /** Plain-JSON summary: `{ [path]: { [group]: { tokens, mean } } }`. */
  toJSON(): Record<string, Record<string, { tokens: number; mean: number[] }>> {
    const out: Record<string, Record<string, { tokens: number; mean: number[] }>> = {};
    for (const [p, byGroup] of this.acc) {
      out[p] = {};
      for (const [g, a] of byGroup) out[p][g] = { tokens: a.tokens, mean: Array.from(a.sum, (v) => v / a.tokens) };
    }
    return out;
  }

  reset(): void {
    this.acc.clear();
  }
}

/** A batch as `src/data/batch.ts` defines it (row-major `[B, T]` host arrays). */
export interface RoutingBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  batchSize: number;
  seqLen: number;
  tasks?: string[];
}

/** Runs the model on one batch with a context (default: a causal LM's `forward(ids, {attentionMask, ctx})`). */
export type BatchRunner = (batch: RoutingBatch, ctx: ForwardContext) => void;

interface CausalLmLike extends Module {
  forward(inputIds: tf.Tensor2D, opts: { attentionMask?: tf.Tensor2D; ctx?: ForwardContext }): tf.Tensor;
}

/**
 * Mean routing vector per routed layer over the real tokens (attention mask 1) of `batches`,
 * in inference mode. Use it with `mergeWithRouting(peft, vectors)` for static routing.
 */
export function meanRoutingVectors(peft: PeftModel, batches: Iterable<RoutingBatch>, run?: BatchRunner): Map<string, Float32Array> {
  const stats = new RoutingStats();
  const runner: BatchRunner =
    run ??
    ((b, ctx) => {
      const model = peft.model as CausalLmLike;
      tf.tidy(() => {
        const ids = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32');
        const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen], 'int32');
        model.forward(ids, { attentionMask: mask, ctx });
      });
    });
  for (const b of batches) {
    const ctx: ForwardContext = { training: false, auxLosses: [], routing: stats };
    const tokenMask = tf.tensor1d(Float32Array.from(b.attentionMask), 'float32');
    ctx.tokenMask = tokenMask;
    try {
      runner(b, ctx);
    } finally {
      tokenMask.dispose();
      for (const l of ctx.auxLosses) l.dispose();
    }
  }
  return stats.means();
}

/**
 * Routing statistics grouped by task over (at most `perTask`) examples of each task, in
 * inference mode: batches hold one task each, so every observation belongs to that task.
 */
export function routingByTask(
  model: LlamaForCausalLM,
  examples: RenderedExample[],
  batchSize: number,
  padId: number,
  perTask = 256,
): RoutingStats {
  const byTask = new Map<string, RenderedExample[]>();
  for (const ex of examples) {
    const list = byTask.get(ex.task) ?? [];
    if (list.length < perTask) list.push(ex);
    byTask.set(ex.task, list);
  }
  const stats = new RoutingStats();
  for (const [task, list] of byTask) {
    stats.group = task;
    for (const b of batchesOf(list, batchSize, { padId, bucket: false })) {
      const tokenMask = tf.tensor1d(Float32Array.from(b.attentionMask)); // [B * T]
      const ctx: ForwardContext = { training: false, auxLosses: [], routing: stats, tokenMask };
      try {
        tf.tidy(() => {
          const ids = tf.tensor2d(b.inputIds, [b.batchSize, b.seqLen], 'int32');
          const mask = tf.tensor2d(b.attentionMask, [b.batchSize, b.seqLen], 'int32');
          model.forward(ids, { attentionMask: mask, ctx, logitsToKeep: 1 });
        });
      } finally {
        tokenMask.dispose();
        for (const a of ctx.auxLosses) a.dispose();
      }
    }
  }
  return stats;
}
