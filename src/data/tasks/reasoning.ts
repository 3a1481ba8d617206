/**
 * Reasoning tasks, generated rather than looked up: `arithmetic` (add or subtract two
 * numbers of 2-3 digits) and `string_ops` (count a word's letters, name its last letter,
 * or spell it backwards). Distractors are near misses of the same kind as the answer.
 */
import type { Rng } from '../../util/rng.ts';
import { commonWords } from './lexicon.ts';
import { assignSplits, byString, makeItem, mapSplits, sampleDistinct, type Fact } from './split.ts';
import type { TaskItem, TaskSpec, TaskSplits } from './types.ts';
import { pushAll } from '../../util/array.ts';

/** Canonical key of a problem (addition is commutative). */
export function arithmeticKey(a: number, op: '+' | '-', b: number): string {
  return op === '+' ? `${Math.min(a, b)}+${Math.max(a, b)}` : `${a}-${b}`;
}

/** Problems generated before splitting (the default sizes' total). */
const ARITHMETIC_POOL = 1800;

interface Problem {
  a: number;
  op: '+' | '-';
  b: number;
  result: number;
}

function randomProblem(rng: Rng): Problem {
  const digits = (): number => (rng.next() < 0.5 ? 10 + rng.int(90) : 100 + rng.int(900));
  let a = digits();
  let b = digits();
  const op = rng.next() < 0.5 ? '+' : '-';
  if (op === '-' && b > a) [a, b] = [b, a];
  return { a, op, b, result: op === '+' ? a + b : a - b };
}

/** Three distinct non-negative near misses: off by one or two units, tens, or hundreds. */
function nearMisses(rng: Rng, answer: number): string[] {
  const offsets = rng.shuffle([1, -1, 2, -2, 10, -10, 20, -20, 100, -100]);
  const out: string[] = [];
  for (const o of offsets) {
    const v = answer + o;
    if (v >= 0 && out.length < 3) out.push(String(v));
  }
  return out;
}

export const arithmeticTask: TaskSpec = {
  name: 'arithmetic',
  category: 'reasoning',
  source: 'generated',
  description: 'Add or subtract two 2-3 digit numbers; distractors are off by 1, 2, 10, 20 or 100.',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    // A pool of at least the default suite's size, so smaller builds draw the same problems.
    const total = Math.max(sizes.train + sizes.validation + sizes.test, ARITHMETIC_POOL);
    const seen = new Set<string>();
    const facts: (Fact & { p: Problem })[] = [];
    while (facts.length < total) {
      const p = randomProblem(rng);
      const key = arithmeticKey(p.a, p.op, p.b);
      if (seen.has(key)) continue;
      seen.add(key);
      facts.push({ key, question: `What is ${p.a} ${p.op} ${p.b}?`, answer: String(p.result), p });
    }
    const split = assignSplits(rng, facts, sizes, false);
    const items = (fs: (typeof facts)[number][]): TaskItem[] =>
      fs.map((f) => makeItem(rng, f.key, f.question, f.answer, nearMisses(rng, f.p.result)));
    return mapSplits(split, items);
  },
  corpusLines(heldOut: TaskSplits, rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    const lines: string[] = [];
    // All one-digit sums and differences, then random 2-3 digit problems not held out.
    for (let a = 0; a <= 9; a++) {
      for (let b = 0; b <= 9; b++) {
        lines.push(`${a} + ${b} = ${a + b}`);
        if (a >= b) lines.push(`${a} - ${b} = ${a - b}`);
      }
    }
    const seen = new Set<string>();
    while (seen.size < 20000) {
      const p = randomProblem(rng);
      const key = arithmeticKey(p.a, p.op, p.b);
      if (skip.has(key) || seen.has(key)) continue;
      seen.add(key);
      lines.push(`${p.a} ${p.op} ${p.b} = ${p.result}`);
    }
    return lines;
  },
};

type StringOp = 'length' | 'last' | 'reverse';
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz';

function reversed(w: string): string {
  return [...w].reverse().join('');
}

/** Swap the letters at i and i + 1. */
function swapAt(w: string, i: number): string {
  const c = [...w];
  [c[i], c[i + 1]] = [c[i + 1], c[i]];
  return c.join('');
}

/**
 * Distractors of one item. Counts and last letters are drawn from `pool`: the answers of the
 * same operation in the same split, with repeats, so each count or letter is offered as often
 * as it is correct and a prior for common lengths or endings scores chance. Reversals get
 * near misses: the reversal with two adjacent letters swapped, or the word itself.
 */
function stringDistractors(rng: Rng, op: StringOp, word: string, answer: string, pool: string[]): string[] {
  let out: string[];
  if (op === 'reverse') {
    const cands = rng.shuffle([...Array(answer.length - 1).keys()]).map((i) => swapAt(answer, i));
    cands.push(word);
    out = [...new Set(cands.filter((c) => c !== answer))].slice(0, 3);
  } else {
    out = sampleDistinct(rng, pool, 3, (v) => v !== answer);
    const fill = op === 'length' ? ['1', '2', '3', '4', '5', '6', '7', '8', '9'] : [...ALPHABET];
    pushAll(out, sampleDistinct(rng, fill, 3 - out.length, (v) => v !== answer && !out.includes(v)));
  }
  // Words with repeated letters have few distinct swaps: fill with one-letter substitutions.
  while (out.length < 3) {
    const i = rng.int(answer.length);
    const v = answer.slice(0, i) + ALPHABET[rng.int(26)] + answer.slice(i + 1);
    if (v !== answer && !out.includes(v)) out.push(v);
  }
  return out;
}

function stringFact(op: StringOp, word: string): Fact {
  if (op === 'length') return { key: word, question: `How many letters are in the word ${word}?`, answer: String(word.length) };
  if (op === 'last') return { key: word, question: `What is the last letter of the word ${word}?`, answer: word[word.length - 1] };
  return { key: word, question: `Spell the word ${word} backwards.`, answer: reversed(word) };
}

/** Spell a word with spaces between its letters ("whale" -> "w h a l e"). */
export function spelled(word: string): string {
  return [...word].join(' ');
}

export const stringOpsTask: TaskSpec = {
  name: 'string_ops',
  category: 'reasoning',
  source: 'generated from common words of Moby-Dick and the State of the Union addresses',
  description: 'Count the letters of a word, name its last letter, or spell it backwards (one operation per word).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    const words = commonWords(5).filter((w) => w.length >= 3 && w.length <= 8 && reversed(w) !== w);
    const ops: StringOp[] = ['length', 'last', 'reverse'];
    const facts = words.map((w) => {
      const op = ops[rng.int(ops.length)];
      return { ...stringFact(op, w), op };
    });
    const split = assignSplits(rng, facts, sizes, false);
    const items = (fs: (typeof facts)[number][]): TaskItem[] => {
      const pools = new Map<StringOp, string[]>(ops.map((op) => [op, fs.filter((f) => f.op === op).map((f) => f.answer).sort(byString)]));
      return fs.map((f) =>
        makeItem(rng, f.key, f.question, f.answer, stringDistractors(rng, f.op, f.key, f.answer, pools.get(f.op) ?? [])),
      );
    };
    return mapSplits(split, items);
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    // Spellings give the model letter-level knowledge of words outside the held-out ones.
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return commonWords(5)
      .filter((w) => w.length >= 3 && w.length <= 12 && !skip.has(w))
      .map((w) => `${w} is spelled ${spelled(w)}.`);
  },
};
