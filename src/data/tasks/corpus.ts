/**
 * The pretraining corpus of the bundled base model: plain English from the same packages
 * as the task suite, with every held-out (validation/test) fact of the suite left out of
 * the lines that state the same relation.
 *
 * Documents (separated by a blank line, shuffled, ~2 % to valid.txt):
 * - Moby-Dick, one document per chapter;
 * - State of the Union addresses (each cut to {@link MAX_SPEECH_CHARS} at a paragraph end),
 *   titled with year and president, except the held-out years of `sotu_president`;
 * - blocks of relation lines from every task's {@link TaskSpec.corpusLines} ("river: a large
 *   natural stream of water.", "whale rhymes with sail.", "whale has 1 syllable.", "hot is
 *   the opposite of cold.", "Mary is a female name.", "347 + 586 = 933", ...), each
 *   computed for the facts that are NOT in that task's validation or test split.
 * No email text is included (the `spam` task reads emails the model has never seen).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadMobyDick, loadSotu } from './sources.ts';
import { namedRng } from './split.ts';
import type { GeneratedTask } from './suite.ts';
import { heldOutSotuYears } from './usHistory.ts';
import { pushAll } from '../../util/array.ts';

/** Longest part of one address kept (characters). */
export const MAX_SPEECH_CHARS = 16000;
/** Relation lines per document. */
const LINES_PER_DOC = 40;
/** One document in this many goes to valid.txt. */
const VALID_EVERY = 50;

/** Typographic punctuation -> ASCII (keeps a small tokenizer's alphabet small). */
export function asciiPunctuation(text: string): string {
  return text
    .replace(/[\u2018\u2019\u201b\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201f\u2033]/g, '"')
    .replace(/[\u2013\u2014\u2015]/g, '--')
    .replace(/\u2026/g, '...')
    .replace(/\u00a0/g, ' ')
    .replace(/\r\n?/g, '\n');
}

/** Collapse runs of blank lines (documents are separated by exactly one blank line). */
function tidy(text: string): string {
  return asciiPunctuation(text)
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n{2,}/g, '\n')
    .trim();
}

/** Cut a speech at the last paragraph end before `max` characters. */
function cutSpeech(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf('\n', max);
  return text.slice(0, cut > max / 2 ? cut : max);
}

/** Summary of a written corpus. */
export interface CorpusInfo {
  seed: number;
  documents: { train: number; valid: number };
  bytes: { train: number; valid: number };
  sha256: { train: string; valid: string };
  /** Relation lines contributed by each task. */
  relationLines: Record<string, number>;
  /** Number of held-out SOTU addresses left out. */
  heldOutSpeeches: number;
}

/** Build the corpus documents in memory (deterministic for a seed and a generated suite). */
export function corpusDocuments(seed: number, suite: GeneratedTask[]): { docs: string[]; relationLines: Record<string, number>; heldOutSpeeches: number } {
  const docs: string[] = [];
  for (const s of loadMobyDick()) docs.push(tidy(`${s.title}\n${s.text}`));

  const sotu = suite.find((t) => t.spec.name === 'sotu_president');
  const skipYears = sotu ? heldOutSotuYears(sotu.splits) : new Set<number>();
  let heldOutSpeeches = 0;
  for (const s of loadSotu()) {
    if (skipYears.has(s.year)) {
      heldOutSpeeches++;
      continue;
    }
    docs.push(tidy(`State of the Union address, ${s.year}, ${s.president}.\n${cutSpeech(s.text, MAX_SPEECH_CHARS)}`));
  }

  const relationLines: Record<string, number> = {};
  const lines: string[] = [];
  for (const { spec, splits } of suite) {
    if (!spec.corpusLines) continue;
    const ls = spec.corpusLines(splits, namedRng(seed, `corpus:${spec.name}`));
    relationLines[spec.name] = ls.length;
    pushAll(lines, ls);
  }
  const rng = namedRng(seed, 'corpus');
  rng.shuffle(lines);
  for (let i = 0; i < lines.length; i += LINES_PER_DOC) docs.push(lines.slice(i, i + LINES_PER_DOC).join('\n'));
  rng.shuffle(docs);
  return { docs, relationLines, heldOutSpeeches };
}

/** Build and write `train.txt`, `valid.txt` and `corpus.json` under `outDir`. */
export function buildCorpus(outDir: string, seed: number, suite: GeneratedTask[]): CorpusInfo {
  const { docs, relationLines, heldOutSpeeches } = corpusDocuments(seed, suite);
  const train: string[] = [];
  const valid: string[] = [];
  docs.forEach((d, i) => (i % VALID_EVERY === VALID_EVERY - 1 ? valid : train).push(d));
  const trainText = `${train.join('\n\n')}\n`;
  const validText = `${valid.join('\n\n')}\n`;
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'train.txt'), trainText);
  writeFileSync(path.join(outDir, 'valid.txt'), validText);
  const sha = (t: string): string => createHash('sha256').update(t).digest('hex');
  const info: CorpusInfo = {
    seed,
    documents: { train: train.length, valid: valid.length },
    bytes: { train: Buffer.byteLength(trainText), valid: Buffer.byteLength(validText) },
    sha256: { train: sha(trainText), valid: sha(validText) },
    relationLines,
    heldOutSpeeches,
  };
  writeFileSync(path.join(outDir, 'corpus.json'), `${JSON.stringify(info, null, 2)}\n`);
  return info;
}
