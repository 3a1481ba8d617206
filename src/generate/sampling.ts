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

/**
 * Choose the next token id for one row of logits. Same distribution as
 * {@link samplingDistribution}, computed without sorting the whole vocabulary (a full sort of
 * 49k logits per token took ~30 ms): top-k through the k-th largest value, top-p through a
 * sort of the candidate probabilities only.
 */
export function sampleToken(logits: ArrayLike<number>, opts: SamplingOptions, rng: Rng): number {
  const t = opts.temperature ?? 0;
  if (!(t > 0)) return argmax(logits);
  const n = logits.length;
  const k = opts.topK ?? 0;
  let ids: number[] | undefined; // undefined = every id
  if (k > 0 && k < n) ids = topKIds(logits, k);
  const count = ids ? ids.length : n;
  const at = (i: number) => (ids ? ids[i] : i);
  let max = -Infinity;
  for (let i = 0; i < count; i++) max = Math.max(max, logits[at(i)]);
  let probs = new Float64Array(count);
  let z = 0;
  for (let i = 0; i < count; i++) z += probs[i] = Math.exp((logits[at(i)] - max) / t);
  const p = opts.topP ?? 1;
  if (p < 1) {
    // Keep the most likely tokens until their mass reaches p (ties broken by lower id, as in
    // samplingDistribution): find the cut-off probability from a sorted copy.
    const sorted = Float64Array.from(probs).sort().reverse();
    let cum = 0;
    let keep = 0;
    while (keep < count) {
      cum += sorted[keep++] / z;
      if (cum >= p) break;
    }
    const tau = sorted[keep - 1];
    let above = 0;
    for (let i = 0; i < count; i++) if (probs[i] > tau) above++;
    let tiesLeft = keep - above;
    const kept: number[] = [];
    const keptP: number[] = [];
    for (let i = 0; i < count; i++) { // candidates are in id order: ties go to lower ids
      if (probs[i] > tau || (probs[i] === tau && tiesLeft-- > 0)) {
        kept.push(at(i));
        keptP.push(probs[i]);
      }
    }
    ids = kept;
    probs = Float64Array.from(keptP);
    z = keptP.reduce((a, b) => a + b, 0);
  }
  let u = rng.next() * z;
  const m = ids ? ids.length : n;
  for (let i = 0; i < m; i++) {
    u -= probs[i];
    if (u < 0) return ids ? ids[i] : i;
  }
  return ids ? ids[m - 1] : m - 1;
}

/** Ids of the k largest logits (ties: lower id first), in id order. */
function topKIds(logits: ArrayLike<number>, k: number): number[] {
  const sorted = Float64Array.from(logits).sort();
  const thr = sorted[sorted.length - k];
  let above = 0;
  for (let i = 0; i < logits.length; i++) if (logits[i] > thr) above++;
  let tiesLeft = k - above;
  const out: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > thr || (logits[i] === thr && tiesLeft-- > 0)) out.push(i);
  }
  return out;
}
