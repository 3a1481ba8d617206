/**
 * Next-token selection from one row of logits: greedy (temperature 0), or sampling with
 * temperature, top-k and top-p (nucleus) filtering, drawn from a seeded {@link Rng}.
 */
import type { Rng } from '../util/rng.ts';

export interface SamplingOptions {
  /** 0 (default) = greedy argmax; > 0 divides the logits before sampling. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: no limit). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability mass reaches p (1: all). */
  topP?: number;
}

/** Index of the largest value (first one on ties). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/**
 * Filtered, renormalised distribution over token ids for `logits` (as `{ids, probs}` sorted by
 * decreasing probability). Exposed for tests.
 */
export function samplingDistribution(logits: ArrayLike<number>, opts: SamplingOptions): { ids: number[]; probs: number[] } {
  const t = opts.temperature ?? 1;
  const n = logits.length;
  let ids = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  const k = opts.topK ?? 0;
  if (k > 0 && k < n) ids = ids.slice(0, k);
  const max = logits[ids[0]];
  let probs = ids.map((i) => Math.exp((logits[i] - max) / t));
  let z = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / z);
  const p = opts.topP ?? 1;
  if (p < 1) {
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += probs[keep++];
      if (cum >= p) break;
    }
    ids = ids.slice(0, keep);
    probs = probs.slice(0, keep);
    z = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((q) => q / z);
  }
  return { ids, probs };
}

/** Choose the next token id for one row of logits. */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  const t = opts.temperature ?? 0;
  if (!(t > 0)) return argmax(logits);
  const { ids, probs } = samplingDistribution(logits, { ...opts, temperature: t });
  let u = rng.next();
  for (let i = 0; i < ids.length; i++) {
    u -= probs[i];
    if (u < 0) return ids[i];
  }
  return ids[ids.length - 1];
}
