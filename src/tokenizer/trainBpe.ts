/**
 * A byte-level BPE trainer (GPT-2 style): the text is split by GPT-2's pre-tokenizer regex,
 * each piece becomes its UTF-8 bytes, and the most frequent adjacent pair is merged until the
 * vocabulary is full. Pair counts are kept incrementally (only the words containing the
 * merged pair are touched) with a lazily-invalidated max-heap, as the Rust `tokenizers`
 * trainer does. The result is a `tokenizer.json` that `@huggingface/tokenizers` (and
 * transformers) load, plus a matching `tokenizer_config.json`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { DEFAULT_CHAT_TEMPLATE } from './chatTemplate.ts';

/** Options of {@link trainBpe}. */
export interface TrainBpeOptions {
  /** Final vocabulary size, special tokens and the 256 byte tokens included. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (training may stop early). Default 2. */
  minFrequency?: number;
  /**
   * Special tokens, given ids 0.. in this order. The BOS/EOS/PAD/UNK tokens below are put
   * first when missing. Default: `<|system|>`, `<|user|>`, `<|assistant|>` (the markers of
   * the default chat template, so each is one token).
   */
  specialTokens?: string[];
  /** Default `<s>`. */
  bosToken?: string;
  /** Default `</s>`. */
  eosToken?: string;
  /** Default `<pad>`. */
  padToken?: string;
  /** Default `<unk>` (never produced by a byte-level model; kept for tooling that expects one). */
  unkToken?: string;
  /** Written as `model_max_length` when given. */
  modelMaxLength?: number;
  /** Chat template written to the config. Default {@link DEFAULT_CHAT_TEMPLATE}. */
  chatTemplate?: string;
  /** Also return how the trainer segmented every distinct pre-token (for checks). */
  returnWordSegmentation?: boolean;
}

/** Result of {@link trainBpe}. */
export interface TrainedBpe {
  /** The `tokenizer.json` object. */
  tokenizerJson: Record<string, unknown>;
  /** The `tokenizer_config.json` object. */
  tokenizerConfig: Record<string, unknown>;
  /** Merges performed, in rank order (byte-level strings, as in tokenizer.json). */
  merges: [string, string][];
  /** Pre-token count, distinct pre-tokens, final vocabulary size. */
  stats: { preTokens: number; distinctPreTokens: number; vocabSize: number; merges: number };
  /** Distinct pre-token (raw text) -> token ids, when `returnWordSegmentation` is set. */
  wordSegmentation?: Map<string, number[]>;
}

/**
 * GPT-2's pre-tokenizer regex (the one `@huggingface/tokenizers`' ByteLevel pre-tokenizer
 * uses). Global: use it with `matchAll`/`match`, not `test`/`exec`, which keep `lastIndex`.
 */
export const GPT2_PRETOKENIZE = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character map used by ByteLevel vocabularies. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const chars = new Array<string>(256);
  for (const b of bs) chars[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (chars[b] === undefined) chars[b] = String.fromCharCode(256 + n++);
  return chars;
})();

const PAIR_BASE = 65536; // pair key = left * PAIR_BASE + right; ids < 65536

/** A max-heap of pair keys by count; ties go to the pair whose (left, right) bytes sort first. */
class PairHeap {
  private keys: number[] = [];
  private counts: number[] = [];
  constructor(private readonly tokenBytes: string[]) {}

  get size(): number {
    return this.keys.length;
  }

  /** Does entry (ki, ci) rank above (kj, cj)? */
  private above(ki: number, ci: number, kj: number, cj: number): boolean {
    if (ci !== cj) return ci > cj;
    const ai = Math.floor(ki / PAIR_BASE);
    const aj = Math.floor(kj / PAIR_BASE);
    if (ai !== aj) return this.tokenBytes[ai] < this.tokenBytes[aj];
    return this.tokenBytes[ki - ai * PAIR_BASE] < this.tokenBytes[kj - aj * PAIR_BASE];
  }

  push(key: number, count: number): void {
    const keys = this.keys;
    const counts = this.counts;
    let i = keys.length;
    keys.push(key);
    counts.push(count);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(key, count, keys[p], counts[p])) break;
      keys[i] = keys[p];
      counts[i] = counts[p];
      i = p;
    }
    keys[i] = key;
    counts[i] = count;
  }

  /** Remove the top; returns [key, count] or undefined when empty. */
  pop(): [number, number] | undefined {
    const keys = this.keys;
    const counts = this.counts;
    if (keys.length === 0) return undefined;
    const top: [number, number] = [keys[0], counts[0]];
    const lastKey = keys.pop() as number;
    const lastCount = counts.pop() as number;
    const n = keys.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.above(keys[r], counts[r], keys[l], counts[l]) ? r : l;
        if (!this.above(keys[c], counts[c], lastKey, lastCount)) break;
        keys[i] = keys[c];
        counts[i] = counts[c];
        i = c;
      }
      keys[i] = lastKey;
      counts[i] = lastCount;
    }
    return top;
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Count pre-tokens, splitting out special-token strings first (as encoding does). */
function countWords(texts: Iterable<string>, specials: string[]): { counts: Map<string, number>; total: number } {
  const counts = new Map<string, number>();
  let total = 0;
  const specialRe = specials.length > 0 ? new RegExp(specials.map(escapeRegExp).join('|'), 'g') : null;
  const addPieces = (text: string) => {
    for (const m of text.matchAll(GPT2_PRETOKENIZE)) {
      const w = m[0];
      counts.set(w, (counts.get(w) ?? 0) + 1);
      total++;
    }
  };
  let index = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new UserError(`trainBpe: text #${index} is not a string`);
    index++;
    if (specialRe === null || !specials.some((s) => text.includes(s))) {
      addPieces(text);
      continue;
    }
    let last = 0;
    for (const m of text.matchAll(specialRe)) {
      addPieces(text.slice(last, m.index));
      last = (m.index as number) + m[0].length;
    }
    addPieces(text.slice(last));
  }
  return { counts, total };
}

/**
 * Train a byte-level BPE tokenizer on `texts`. Deterministic: the result depends only on
 * the multiset of pre-tokens (not on text order); ties between equally frequent pairs go
 * to the pair whose left token's bytes, then right token's bytes, sort first. A pair whose
 * merge would recreate an existing token string is skipped, so every vocabulary entry is
 * distinct and encoding with the merges reproduces the trainer's segmentation.
 */
export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): TrainedBpe {
  const bos = opts.bosToken ?? '<s>';
  const eos = opts.eosToken ?? '</s>';
  const pad = opts.padToken ?? '<pad>';
  const unk = opts.unkToken ?? '<unk>';
  const requested = opts.specialTokens ?? ['<|system|>', '<|user|>', '<|assistant|>'];
  const specials: string[] = [];
  for (const s of [unk, bos, eos, pad, ...requested]) {
    if (typeof s !== 'string' || s.length === 0) {
      throw new UserError('trainBpe: special tokens must be non-empty strings');
    }
    if (!specials.includes(s)) specials.push(s);
  }
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < specials.length + 256 || opts.vocabSize > PAIR_BASE) {
    throw new UserError(
      `trainBpe: vocabSize must be an integer in [${specials.length + 256}, ${PAIR_BASE}] ` +
        `(${specials.length} special tokens + 256 bytes at least), got ${opts.vocabSize}`,
    );
  }
  const targetTokens = opts.vocabSize - specials.length; // byte tokens + merged tokens

  // --- distinct pre-tokens as byte-id sequences
  const { counts: wordCounts, total } = countWords(texts, specials);
  const wordText: string[] = [];
  const words: number[][] = [];
  const freq: number[] = [];
  const encoder = new TextEncoder();
  for (const [w, c] of wordCounts) {
    wordText.push(w);
    words.push(Array.from(encoder.encode(w)));
    freq.push(c);
  }

  // tokenBytes[id]: the token's bytes as a latin1 string (string order = byte order)
  const tokenBytes: string[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(String.fromCharCode(b));
  const idOfBytes = new Map<string, number>(tokenBytes.map((s, i) => [s, i]));

  // --- initial pair counts and where each pair occurs
  const pairCounts = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w];
    const c = freq[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * PAIR_BASE + s[i + 1];
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + c);
      let set = where.get(key);
      if (set === undefined) where.set(key, (set = new Set()));
      set.add(w);
    }
  }
  const heap = new PairHeap(tokenBytes);
  for (const [key, c] of pairCounts) heap.push(key, c);

  const mergePairs: [number, number][] = [];
  const banned = new Set<number>();
  while (tokenBytes.length < targetTokens) {
    const top = heap.pop();
    if (top === undefined) break;
    const [key, count] = top;
    if (banned.has(key) || pairCounts.get(key) !== count) continue; // stale entry
    if (count < minFrequency) break;
    const a = Math.floor(key / PAIR_BASE);
    const b = key - a * PAIR_BASE;
    const merged = tokenBytes[a] + tokenBytes[b];
    if (idOfBytes.has(merged)) {
      banned.add(key); // would duplicate an existing token: never merge this pair
      continue;
    }
    const id = tokenBytes.length;
    tokenBytes.push(merged);
    idOfBytes.set(merged, id);
    mergePairs.push([a, b]);

    const delta = new Map<number, number>();
    const affected = where.get(key);
    where.delete(key);
    if (affected === undefined) continue;
    for (const w of affected) {
      const s = words[w];
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) {
          found = true;
          break;
        }
      }
      if (!found) continue; // a stale `where` entry
      const c = freq[w];
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          out.push(id);
          i += 2;
        } else {
          out.push(s[i]);
          i += 1;
        }
      }
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i] * PAIR_BASE + s[i + 1];
        delta.set(k, (delta.get(k) ?? 0) - c);
      }
      for (let i = 0; i + 1 < out.length; i++) {
        const k = out[i] * PAIR_BASE + out[i + 1];
        delta.set(k, (delta.get(k) ?? 0) + c);
        if (out[i] === id || out[i + 1] === id) {
          let set = where.get(k);
          if (set === undefined) where.set(k, (set = new Set()));
          set.add(w);
        }
      }
      words[w] = out;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const n = (pairCounts.get(k) ?? 0) + d;
      if (n > 0) {
        pairCounts.set(k, n);
        if (!banned.has(k)) heap.push(k, n);
      } else {
        pairCounts.delete(k);
      }
    }
  }

  // --- export: ids = specials, then 256 bytes, then merged tokens
  const offset = specials.length;
  const toChars = (bytes: string) => {
    let out = '';
    for (let i = 0; i < bytes.length; i++) out += BYTE_TO_CHAR[bytes.charCodeAt(i)];
    return out;
  };
  const tokenChars = tokenBytes.map(toChars);
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => {
    vocab[s] = i;
  });
  tokenChars.forEach((t, i) => {
    vocab[t] = offset + i;
  });
  const merges: [string, string][] = mergePairs.map(([a, b]) => [tokenChars[a], tokenChars[b]]);
  const addedTokens = specials.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const bosId = specials.indexOf(bos);
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [bosId], tokens: [bos] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // "left right" strings: byte-level tokens never contain a space, and every
      // tokenizers version reads this form.
      merges: merges.map(([l, r]) => `${l} ${r}`),
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: 'PreTrainedTokenizerFast',
    bos_token: bos,
    eos_token: eos,
    pad_token: pad,
    unk_token: unk,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    additional_special_tokens: specials.filter((s) => ![bos, eos, pad, unk].includes(s)),
    chat_template: opts.chatTemplate ?? DEFAULT_CHAT_TEMPLATE,
  };
  if (opts.modelMaxLength !== undefined) tokenizerConfig.model_max_length = opts.modelMaxLength;

  let wordSegmentation: Map<string, number[]> | undefined;
  if (opts.returnWordSegmentation) {
    wordSegmentation = new Map();
    for (let w = 0; w < words.length; w++) wordSegmentation.set(wordText[w], words[w].map((t) => t + offset));
  }
  return {
    tokenizerJson,
    tokenizerConfig,
    merges,
    stats: {
      preTokens: total,
      distinctPreTokens: words.length,
      vocabSize: offset + tokenBytes.length,
      merges: merges.length,
    },
    wordSegmentation,
  };
}

/**
 * Write `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed), each
 * atomically, in the Hugging Face layout `Tokenizer.fromDir` and transformers read.
 */
export function writeTokenizerFiles(
  dir: string,
  files: Pick<TrainedBpe, 'tokenizerJson' | 'tokenizerConfig'>,
): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomicSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  writeFileAtomicSync(path.join(dir, 'tokenizer_config.json'), `${JSON.stringify(files.tokenizerConfig, null, 2)}\n`);
}
