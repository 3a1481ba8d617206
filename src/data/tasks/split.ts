/**
 * Deterministic splitting and multiple-choice helpers shared by the task generators.
 * Every function takes its randomness from an {@link Rng} and sorts its inputs first, so the
 * result depends only on the seed, never on Map/Set insertion or file-system order.
 */
import { Rng } from '../../util/rng.ts';
import type { SplitSizes, TaskItem, TaskSplits } from './types.ts';
import { pushAll } from '../../util/array.ts';

/** 32-bit FNV-1a hash of a string (used to derive one generator per task from the suite seed). */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The generator of one task (or one corpus part): depends on the seed and the name only. */
export function namedRng(seed: number, name: string): Rng {
  return new Rng((seed ^ fnv1a(name)) >>> 0);
}

/** Code-unit order comparison (locale independent). */
export function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Sorted unique strings. */
export function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort(byString);
}

/**
 * Draw up to `k` distinct values from `pool` (given in a deterministic order) that `accept` allows,
 * in random order. Returns fewer if the pool runs out.
 */
export function sampleDistinct(rng: Rng, pool: readonly string[], k: number, accept: (v: string) => boolean): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  // Rejection sampling first (cheap for big pools), then a full scan in shuffled order.
  for (let tries = 0; tries < 20 * k && out.length < k && pool.length > 0; tries++) {
    const v = pool[rng.int(pool.length)];
    if (seen.has(v)) continue;
    seen.add(v);
    if (accept(v)) out.push(v);
  }
  if (out.length < k) {
    for (const v of rng.shuffle([...pool])) {
      if (out.length >= k) break;
      if (seen.has(v)) continue;
      seen.add(v);
      if (accept(v)) out.push(v);
    }
  }
  return out;
}

/**
 * Build an item whose choices are the answer plus the distractors in a random order
 * (or in the given `fixedChoices` order, which must contain the answer).
 */
export function makeItem(
  rng: Rng,
  key: string,
  question: string,
  answer: string,
  distractors: string[],
  fixedChoices?: string[],
): TaskItem {
  let choices: string[];
  if (fixedChoices) {
    choices = [...fixedChoices];
  } else {
    choices = rng.shuffle([answer, ...distractors]);
  }
  const answerIndex = choices.indexOf(answer);
  if (answerIndex < 0) throw new Error(`task item ${key}: answer '${answer}' not among its choices`);
  if (new Set(choices).size !== choices.length) throw new Error(`task item ${key}: duplicate choices ${JSON.stringify(choices)}`);
  return { key, question, answer, choices, answerIndex };
}

/**
 * Pick `n` items as evenly as possible across labels (round-robin over the sorted labels,
 * each label's candidates in shuffled order), so the held-out splits of a classification
 * task are balanced and a constant guess scores chance.
 */
export function balancedTake<T>(rng: Rng, byLabel: Map<string, T[]>, n: number): T[] {
  const labels = [...byLabel.keys()].sort(byString);
  const queues = labels.map((l) => rng.shuffle([...(byLabel.get(l) ?? [])]));
  const out: T[] = [];
  for (let round = 0; out.length < n; round++) {
    let any = false;
    for (const q of queues) {
      if (round < q.length && out.length < n) {
        out.push(q[round]);
        any = true;
      }
    }
    if (!any) break;
  }
  return out;
}

/** A fact before splitting: its key, prompt and answer, and the pool its distractors come from. */
export interface Fact {
  key: string;
  question: string;
  answer: string;
  /** Distractors are drawn from answers of facts with the same pool in the same split ('' by default). */
  pool?: string;
}

/** Options of {@link splitFacts}. */
export interface SplitFactsOptions {
  /** Choices per item (answer + numChoices - 1 distractors). */
  numChoices: number;
  /** Extra rule: may `candidate` be a distractor for `fact`? (It is never the answer itself.) */
  allow?: (fact: Fact, candidate: string) => boolean;
  /** Use these choices, in this order, for every item instead of drawing distractors. */
  fixedChoices?: string[];
  /**
   * Balance each split over the answers (for classification tasks with a small label set:
   * a constant guess then scores chance). Requires one fact per key.
   */
  balanced?: boolean;
}

/**
 * Split facts by key (all facts of one key land in the same split) into at most
 * `sizes.test` / `sizes.validation` / `sizes.train` items, then turn each fact into a
 * multiple-choice item whose distractors are answers of other facts from the SAME split
 * and pool, so every choice of a held-out item is as unseen in training as its answer.
 * Distractors are drawn in proportion to how often each answer is correct.
 */
export function splitFacts(rng: Rng, facts: Fact[], sizes: SplitSizes, opts: SplitFactsOptions): TaskSplits {
  const chosen = assignSplits(rng, facts, sizes, opts.balanced ?? false);
  const out: TaskSplits = { train: [], validation: [], test: [] };
  // Fallback pools over all facts, for splits too small to hold enough distractors.
  const globalPools = new Map<string, string[]>();
  for (const f of facts) {
    const list = globalPools.get(f.pool ?? '');
    if (list) list.push(f.answer);
    else globalPools.set(f.pool ?? '', [f.answer]);
  }
  for (const split of SPLIT_ORDER) {
    const pools = new Map<string, string[]>();
    for (const f of chosen[split]) {
      const p = f.pool ?? '';
      const list = pools.get(p);
      if (list) list.push(f.answer);
      else pools.set(p, [f.answer]);
    }
    // Pools keep duplicates: an answer is drawn as a distractor as often as it is correct,
    // so a model that merely prefers frequent answers scores chance.
    for (const [p, list] of pools) pools.set(p, list.sort(byString));
    for (const f of chosen[split]) {
      if (opts.fixedChoices) {
        out[split].push(makeItem(rng, f.key, f.question, f.answer, [], opts.fixedChoices));
        continue;
      }
      const pool = pools.get(f.pool ?? '') ?? [];
      const ok = (v: string): boolean => v !== f.answer && (opts.allow?.(f, v) ?? true);
      const distractors = sampleDistinct(rng, pool, opts.numChoices - 1, ok);
      if (distractors.length < opts.numChoices - 1) {
        const global = [...(globalPools.get(f.pool ?? '') ?? [])].sort(byString);
        const more = sampleDistinct(rng, global, opts.numChoices - 1 - distractors.length, (v) => ok(v) && !distractors.includes(v));
        pushAll(distractors, more);
      }
      if (distractors.length < opts.numChoices - 1) {
        throw new Error(`task item ${f.key} (${split}): only ${distractors.length} distractors available`);
      }
      out[split].push(makeItem(rng, f.key, f.question, f.answer, distractors));
    }
  }
  return out;
}

const SPLIT_ORDER: ('test' | 'validation' | 'train')[] = ['test', 'validation', 'train'];

/**
 * Assign facts to splits by key (all facts of one key land in the same split), test first,
 * then validation, then train, each up to its size. With `balanced`, each split is drawn
 * round-robin over the answers (one fact per key required).
 */
export function assignSplits<F extends Fact>(rng: Rng, facts: F[], sizes: SplitSizes, balanced: boolean): Record<'train' | 'validation' | 'test', F[]> {
  const byKey = new Map<string, F[]>();
  for (const f of facts) {
    const list = byKey.get(f.key);
    if (list) list.push(f);
    else byKey.set(f.key, [f]);
  }
  const keys = rng.shuffle(sortedUnique(byKey.keys()));
  const chosen: Record<'train' | 'validation' | 'test', F[]> = { train: [], validation: [], test: [] };
  if (balanced) {
    if (byKey.size !== facts.length) throw new Error('assignSplits: balanced splits need one fact per key');
    let rest = keys.map((k) => (byKey.get(k) ?? [])[0]);
    for (const split of SPLIT_ORDER) {
      const byLabel = new Map<string, F[]>();
      for (const f of rest) {
        const list = byLabel.get(f.answer);
        if (list) list.push(f);
        else byLabel.set(f.answer, [f]);
      }
      chosen[split] = rng.shuffle(balancedTake(rng, byLabel, sizes[split]));
      const taken = new Set(chosen[split].map((f) => f.key));
      rest = rest.filter((f) => !taken.has(f.key));
    }
  } else {
    let s = 0;
    for (const k of keys) {
      while (s < SPLIT_ORDER.length && chosen[SPLIT_ORDER[s]].length >= sizes[SPLIT_ORDER[s]]) s++;
      if (s >= SPLIT_ORDER.length) break;
      const room = sizes[SPLIT_ORDER[s]] - chosen[SPLIT_ORDER[s]].length;
      pushAll(chosen[SPLIT_ORDER[s]], (byKey.get(k) ?? []).slice(0, room));
    }
  }
  return chosen;
}

/**
 * Turn assigned facts into items split by split, test first, then validation, then train:
 * the random draws of the held-out items come first, so they do not depend on the train size.
 */
export function mapSplits<F>(split: Record<'train' | 'validation' | 'test', F[]>, items: (fs: F[]) => TaskItem[]): TaskSplits {
  const test = items(split.test);
  const validation = items(split.validation);
  const train = items(split.train);
  return { train, validation, test };
}
