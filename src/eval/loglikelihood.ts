/**
 * Batched log-likelihood of continuations given contexts (lm-eval-harness `loglikelihood`).
 *
 * Requests are sorted by length (longest first) and packed `batchSize` at a time into one
 * LEFT-padded forward `[B, T]`, so every row's continuation is predicted by the last positions
 * of the batch: the model is asked for the logits of the last `max(continuation length)`
 * positions only (`logitsToKeep`, HF `logits_to_keep`; a model that ignores it returns all T
 * and is indexed accordingly), which skips the vocabulary projection of the context. Only the
 * rows that predict continuation tokens are gathered (`[N, V]`, N = continuation tokens in the
 * batch); each log-probability is `logit[target] - logsumexp(row)`, so no log-softmax over
 * `[B, T, V]` is built. Sums are accumulated in float64 on the host.
 */
import { tf } from '../backend/tf.ts';
import { inferenceContext, type ForwardContext } from '../nn/context.ts';
import { maxOf } from '../util/array.ts';
import type { PositionLimit } from '../models/positions.ts';

/**
 * What the evaluator needs from a model: a causal LM forward returning logits `[B, T, V]`
 * (or `[B, logitsToKeep, V]` for the last positions when it honours `logitsToKeep`), with
 * padding given by `attentionMask` (left padding here). `LlamaForCausalLM` fits, with or without
 * adapters injected (pass `peftModel.model`).
 */
export interface CausalLMLike {
  forward(inputIds: tf.Tensor2D, opts?: { attentionMask?: tf.Tensor2D; ctx?: ForwardContext; logitsToKeep?: number }): tf.Tensor3D;
}

/** One scoring request: token ids of the context and of the continuation to score. */
export interface LoglikelihoodRequest {
  contextIds: number[];
  continuationIds: number[];
}

/** Result of one request. */
export interface LoglikelihoodResult {
  /** Sum of `log p(token | previous)` over the continuation tokens (natural log). */
  logLikelihood: number;
  /** Whether every continuation token was the argmax prediction. */
  isGreedy: boolean;
  /** Number of scored tokens. */
  tokens: number;
}

export interface LoglikelihoodOptions {
  /** Sequences per forward (default 32). */
  batchSize?: number;
  /** Longest input fed to the model; longer sequences keep their last `maxLength + 1` tokens (default: no limit). */
  maxLength?: number;
  /** A fresh context per forward (default {@link inferenceContext}); e.g. to observe routing. */
  makeContext?: () => ForwardContext;
  /** Called after each forward with (requests done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Told the length of every sequence fed (the warning past the model's max positions). */
  positions?: PositionLimit;
}

/**
 * Score every request; results are in request order.
 * @throws Error when a continuation is empty or longer than `maxLength`.
 */
export async function loglikelihoods(
  model: CausalLMLike,
  requests: LoglikelihoodRequest[],
  opts: LoglikelihoodOptions = {},
): Promise<LoglikelihoodResult[]> {
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batchSize must be a positive integer, got ${batchSize}`);
  // Each sequence is context + continuation minus its last token (never fed: nothing follows it).
  const seqs = requests.map((r, i) => {
    if (r.continuationIds.length === 0) throw new Error(`request ${i}: empty continuation`);
    let all = [...r.contextIds, ...r.continuationIds];
    if (opts.maxLength !== undefined && all.length > opts.maxLength + 1) {
      if (r.continuationIds.length > opts.maxLength) throw new Error(`request ${i}: continuation longer than maxLength ${opts.maxLength}`);
      all = all.slice(all.length - (opts.maxLength + 1)); // left-truncate the context
    }
    return { i, all, cont: r.continuationIds.length };
  });
  // Longest first: similar lengths share a batch, and an out-of-memory shows up at once.
  const order = [...seqs].sort((a, b) => b.all.length - a.all.length || a.i - b.i);
  const results: LoglikelihoodResult[] = new Array(requests.length);
  for (let start = 0; start < order.length; start += batchSize) {
    const group = order.slice(start, start + batchSize);
    const b = group.length;
    const t = maxOf(group.map((s) => s.all.length - 1));
    const keep = maxOf(group.map((s) => s.cont));
    opts.positions?.check(t, 'a scored sequence (context + choice)', `lower --max-length to ${opts.positions.limit}`);
    const ids = new Int32Array(b * t);
    const mask = new Int32Array(b * t);
    group.forEach((s, row) => {
      const len = s.all.length - 1;
      ids.set(s.all.slice(0, len), row * t + t - len); // left padding: the row ends at t - 1
      mask.fill(1, row * t + t - len, (row + 1) * t);
    });
    const ctx = opts.makeContext ? opts.makeContext() : inferenceContext();
    const [lp, greedy] = tf.tidy(() => {
      const inputIds = tf.tensor2d(ids, [b, t], 'int32');
      const attentionMask = tf.tensor2d(mask, [b, t], 'int32');
      const logits = model.forward(inputIds, { attentionMask, ctx, logitsToKeep: keep }); // [B, K, V], K = keep or t
      const [, k, v] = logits.shape;
      // Continuation token j of a row is predicted at position t - cont + j, i.e. at index
      // t - cont + j - (t - k) of the kept positions.
      const rowIdx: number[] = [];
      const targets: number[] = [];
      group.forEach((s, row) => {
        for (let j = 0; j < s.cont; j++) {
          rowIdx.push(row * k + k - s.cont + j);
          targets.push(s.all[s.all.length - s.cont + j]);
        }
      });
      const rows = tf.gather(logits.reshape([b * k, v]), tf.tensor1d(rowIdx, 'int32')); // [N, V]
      const n = rowIdx.length;
      const flatTarget = tf.tensor1d(targets.map((tok, j) => j * v + tok), 'int32');
      const targetLogit = tf.gather(rows.reshape([n * v]), flatTarget); // [N]
      const logProb = targetLogit.sub(tf.logSumExp(rows, 1)); // [N]
      const isMax = targetLogit.greaterEqual(rows.max(1)); // [N]
      return [logProb, isMax];
    });
    for (const a of ctx.auxLosses) a.dispose();
    const [lpData, greedyData] = await Promise.all([lp.data(), greedy.data()]);
    lp.dispose();
    greedy.dispose();
    let j = 0;
    for (const s of group) {
      let sum = 0;
      let allGreedy = true;
      for (let k = 0; k < s.cont; k++, j++) {
        sum += lpData[j];
        if (!greedyData[j]) allGreedy = false;
      }
      results[s.i] = { logLikelihood: sum, isGreedy: allGreedy, tokens: s.cont };
    }
    opts.onProgress?.(Math.min(start + batchSize, order.length), order.length);
  }
  return results;
}
