/**
 * Word-level helpers shared by the generators: which words count as simple and common
 * (so a small model pretrained on the project's corpus has met them), and per-split pools.
 */
import { loadWordFrequency } from './sources.ts';

/** A plain lower-case alphabetic word of at least `minLength` letters. */
export function isSimpleWord(w: string, minLength = 2): boolean {
  return w.length >= minLength && /^[a-z]+$/.test(w);
}

/** How often a lower-case word occurs in Moby-Dick and the State of the Union addresses. */
export function wordFrequency(w: string): number {
  return loadWordFrequency().get(w) ?? 0;
}

/** Simple words occurring at least `minFreq` times, most frequent first (ties alphabetical). */
export function commonWords(minFreq: number): string[] {
  const out: [string, number][] = [];
  for (const [w, n] of loadWordFrequency()) if (n >= minFreq && isSimpleWord(w)) out.push([w, n]);
  out.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return out.map(([w]) => w);
}

/** Capitalise the first letter. */
export function capitalise(w: string): string {
  return w.length === 0 ? w : w[0].toUpperCase() + w.slice(1);
}

/** Whether `word` occurs as a whole word in `text` (case-insensitive). */
export function containsWord(text: string, word: string): boolean {
  const t = ` ${text.toLowerCase().replace(/[^a-z]+/g, ' ')} `;
  return t.includes(` ${word.toLowerCase()} `);
}
