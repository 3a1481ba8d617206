/**
 * The byte-level BPE trainer, checked against things it does not share code with: a
 * brute-force trainer written here (recounts every pair at every step), a naive
 * merge-by-rank encoder written here, and @huggingface/tokenizers loading the result.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { trainBpe, writeTokenizerFiles } from '../../src/tokenizer/trainBpe.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { UserError } from '../../src/errors.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const mobyDir = path.join(root, 'node_modules', '@stdlib', 'datasets-moby-dick', 'data');

/** ~150 KB of real English plus some non-Latin text and chat-formatted lines. */
const corpus: string[] = [
  ...['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'].map((c) =>
    fs.readFileSync(path.join(mobyDir, `chapter_${c}.txt`), 'utf8'),
  ),
  'Ärger über Öl; naïve café — Ελληνικά, русский текст, 日本語のテキスト 😀👍🏽',
  '<|user|>\nWhat is a whale?</s>\n<|assistant|>\nA large sea mammal.</s>\n',
  'numbers 1234567890 3.14159\t\ttabs\r\n  spaces   ',
];

// GPT-2's pre-tokenizer pattern, written out again for the reference encoder.
const PAT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Byte -> GPT-2 printable character, from the published construction. */
function byteChars(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(printable(b) ? b : 256 + n++));
  return out;
}
const BYTE_CHARS = byteChars();

/** Naive encoder: repeatedly merge the lowest-ranked adjacent pair (leftmost on ties). */
function naiveEncodeWord(word: string, ranks: Map<string, number>): string[] {
  let syms = Array.from(new TextEncoder().encode(word), (b) => BYTE_CHARS[b]);
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < syms.length; i++) {
      const r = ranks.get(`${syms[i]} ${syms[i + 1]}`);
      if (r !== undefined && r < bestRank) {
        bestRank = r;
        best = i;
      }
    }
    if (best < 0) return syms;
    syms = [...syms.slice(0, best), syms[best] + syms[best + 1], ...syms.slice(best + 2)];
  }
}

/** Brute-force trainer: recount all pairs each step; same tie and duplicate rules as documented. */
function bruteForceMerges(texts: string[], nMerges: number, minFrequency: number): string[] {
  const counts = new Map<string, number>();
  for (const t of texts) for (const m of t.matchAll(PAT)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  // words as arrays of latin1 byte strings (string order = byte order)
  const latin1 = (w: string) => Array.from(new TextEncoder().encode(w), (b) => String.fromCharCode(b));
  const words = [...counts].map(([w, c]) => ({ syms: latin1(w), c }));
  const existing = new Set<string>(Array.from({ length: 256 }, (_, b) => String.fromCharCode(b)));
  const banned = new Set<string>();
  const merges: string[] = [];
  while (merges.length < nMerges) {
    const pairs = new Map<string, { a: string; b: string; n: number }>();
    for (const { syms, c } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = JSON.stringify([syms[i], syms[i + 1]]);
        if (banned.has(k)) continue;
        const p = pairs.get(k) ?? { a: syms[i], b: syms[i + 1], n: 0 };
        p.n += c;
        pairs.set(k, p);
      }
    }
    let best: { a: string; b: string; n: number } | undefined;
    for (const p of pairs.values()) {
      const tieWins = best !== undefined && p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b));
      if (best === undefined || p.n > best.n || tieWins) best = p;
    }
    if (best === undefined || best.n < minFrequency) break;
    if (existing.has(best.a + best.b)) {
      banned.add(JSON.stringify([best.a, best.b]));
      continue;
    }
    existing.add(best.a + best.b);
    const toChars = (s: string) => Array.from(s, (ch) => BYTE_CHARS[ch.charCodeAt(0)]).join('');
    merges.push(`${toChars(best.a)} ${toChars(best.b)}`);
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; ) {
        if (i + 1 < w.syms.length && w.syms[i] === best.a && w.syms[i + 1] === best.b) {
          out.push(best.a + best.b);
          i += 2;
        } else out.push(w.syms[i++]);
      }
      w.syms = out;
    }
  }
  return merges;
}

const trained = trainBpe(corpus, { vocabSize: 1200, returnWordSegmentation: true });
const tj = trained.tokenizerJson as { model: { vocab: Record<string, number>; merges: string[] } };
const tok = Tokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);

describe('trainBpe', () => {
  test('the incremental trainer picks the same merges as a brute-force trainer', () => {
    const small = [corpus[0].slice(0, 6000), corpus[12], 'aaaa aaa aa a abab baba'];
    for (const minFrequency of [1, 3]) {
      // specialTokens: [] leaves the 4 role tokens (unk, bos, eos, pad)
      const fast = trainBpe(small, { vocabSize: 4 + 256 + 150, minFrequency, specialTokens: [] });
      assert.equal(fast.merges.length, 150);
      const slow = bruteForceMerges(small, 150, minFrequency);
      assert.deepEqual((fast.tokenizerJson.model as { merges: string[] }).merges, slow);
    }
  });

  test('vocabulary: exact size, specials first, 256 bytes, distinct ids 0..V-1', () => {
    const vocab = tj.model.vocab;
    assert.equal(trained.stats.vocabSize, 1200);
    assert.equal(tok.vocabSize, 1200);
    const ids = Object.values(vocab).sort((a, b) => a - b);
    assert.deepEqual(ids, Array.from({ length: 1200 }, (_, i) => i));
    assert.deepEqual(
      ['<unk>', '<s>', '</s>', '<pad>', '<|system|>', '<|user|>', '<|assistant|>'].map((s) => vocab[s]),
      [0, 1, 2, 3, 4, 5, 6],
    );
    for (let b = 0; b < 256; b++) assert.equal(vocab[BYTE_CHARS[b]], 7 + b);
    assert.equal(tj.model.merges.length, 1200 - 7 - 256);
  });

  test('@huggingface/tokenizers reproduces the trainer segmentation of the training text', () => {
    const seg = trained.wordSegmentation!;
    for (const text of corpus) {
      const expected: number[] = [];
      // split out the special tokens as encoding does, then the trainer's per-word tokens
      for (const part of text.split(/(<\|user\|>|<\|assistant\|>|<\/s>)/)) {
        if (part === '') continue;
        const special = tj.model.vocab[part];
        if (special !== undefined && special < 7) expected.push(special);
        else for (const m of part.matchAll(PAT)) expected.push(...seg.get(m[0])!);
      }
      assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), expected);
    }
  });

  test('a naive merge-by-rank encoder agrees with the trainer on every distinct training word', () => {
    const ranks = new Map(tj.model.merges.map((m, i) => [m, i]));
    const idToToken = new Map(Object.entries(tj.model.vocab).map(([t, i]) => [i, t]));
    for (const [word, ids] of trained.wordSegmentation!) {
      assert.deepEqual(naiveEncodeWord(word, ranks), ids.map((i) => idToToken.get(i)), JSON.stringify(word));
    }
  });

  test('encode/decode round-trips arbitrary unicode losslessly', () => {
    // any code point but lone surrogates (which UTF-8 cannot encode); ASCII weighted up
    const codePoint = fc.oneof(
      fc.integer({ min: 0, max: 0x7f }),
      fc.integer({ min: 0x80, max: 0xd7ff }),
      fc.integer({ min: 0xe000, max: 0x10ffff }),
    );
    const anyUnicode = fc.array(codePoint, { maxLength: 40 }).map((cps) => String.fromCodePoint(...cps));
    fc.assert(
      fc.property(anyUnicode, (s) => {
        assert.equal(tok.decode(tok.encode(s, { addSpecialTokens: false })), s);
        const withBos = tok.encode(s);
        assert.equal(withBos[0], 1);
        assert.deepEqual(withBos.slice(1), tok.encode(s, { addSpecialTokens: false }));
      }),
      { numRuns: 300, seed: 7 },
    );
    const edgeCases = ['', ' ', '\n\n', '  two  spaces ', '😀👍🏽🇫🇷', '\u0000\u0001\u007f', 'tab\there', 'Ω≈ç√∫', 'a<|user|>b</s><s>'];
    for (const s of edgeCases) {
      assert.equal(tok.decode(tok.encode(s, { addSpecialTokens: false })), s);
    }
  });

  test('deterministic: same result twice and with the texts in reverse order', () => {
    const a = trainBpe(corpus.slice(0, 4), { vocabSize: 600 });
    const b = trainBpe(corpus.slice(0, 4), { vocabSize: 600 });
    const c = trainBpe(corpus.slice(0, 4).reverse(), { vocabSize: 600 });
    assert.equal(JSON.stringify(a.tokenizerJson), JSON.stringify(b.tokenizerJson));
    assert.equal(JSON.stringify(a.tokenizerJson), JSON.stringify(c.tokenizerJson));
  });

  test('ties go to the pair whose bytes sort first; minFrequency stops training', () => {
    const r = trainBpe(['xy', 'ab'], { vocabSize: 7 + 256 + 1, minFrequency: 1 });
    assert.deepEqual(r.merges, [['a', 'b']]);
    const stopped = trainBpe(['ab ab ab cd cd'], { vocabSize: 7 + 256 + 50, minFrequency: 3 });
    // counts: (a,b)=3, (Ġ,a)=2, (Ġ,c)=2, (c,d)=2 -> only (a,b) reaches 3
    assert.deepEqual(stopped.merges, [['a', 'b']]);
    assert.equal(stopped.stats.vocabSize, 7 + 256 + 1);
  });

  test('config: bos added by encode, chat markers are single tokens, default template, loads from disk', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-bpe-'));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    writeTokenizerFiles(path.join(dir, 'out'), trained);
    const t = Tokenizer.fromDir(path.join(dir, 'out'));
    assert.equal(t.bosTokenId, 1);
    assert.deepEqual(t.eosTokenIds, [2]);
    assert.equal(t.padTokenId, 3);
    assert.equal(t.unkTokenId, 0);
    assert.equal(t.encode('whale')[0], 1);
    assert.equal(t.hasChatTemplate, true);
    const text = t.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    assert.equal(text, '<|user|>\nHi</s>\n<|assistant|>\n');
    const ids = t.encode(text, { addSpecialTokens: false });
    assert.equal(ids[0], 5);
    assert.equal(ids.at(-2), 6);
    assert.equal(t.decode(ids, { skipSpecialTokens: true }), '\nHi\n\n');
  });

  test('a vocabSize below specials + 256 is a UserError', () => {
    assert.throws(
      () => trainBpe(['abc'], { vocabSize: 100 }),
      (e: unknown) => e instanceof UserError && /vocabSize must be/.test(e.message),
    );
    assert.throws(() => trainBpe(['abc'], { vocabSize: 300, specialTokens: [''] }), UserError);
  });
});
