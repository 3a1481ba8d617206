/**
 * Text generation with a KV cache: encode (or take ids), left-pad a batch, prefill once, then
 * decode one token per step, greedy or sampled, streaming decoded text through `onToken`
 * and stopping at end-of-sequence tokens, stop strings or `maxNewTokens`.
 */
import { initBackend, tf } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { Rng } from '../util/rng.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { KVCache } from '../models/llama/kvCache.ts';
import { sampleToken, type SamplingOptions } from './sampling.ts';
import { maxOf } from '../util/array.ts';
import type { PositionLimit } from '../models/positions.ts';

/** What generation needs from a tokenizer (src/tokenizer/tokenizer.ts implements it). */
export interface GenerationTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  eosTokenIds: number[];
  padTokenId?: number;
}

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per row (default 64). */
  maxNewTokens?: number;
  /** Seed of the sampler (default 0); same seed, same tokens. */
  seed?: number;
  /** Stop strings: generation of a row ends when its text contains one (not included). */
  stop?: string[];
  /** End-of-sequence ids (default: the tokenizer's, else config `eos_token_id`). */
  eosTokenIds?: number[];
  /** Add BOS etc. when encoding text prompts (default true). */
  addSpecialTokens?: boolean;
  /** Streaming: called with each new piece of decoded text of row `row`. */
  onToken?: (text: string, info: { row: number; tokenId: number }) => void;
  /** Told the length fed at every step (the warning past the model's max positions). */
  positions?: PositionLimit;
}

export type FinishReason = 'eos' | 'stop' | 'length';

export interface GenerateResult {
  /** Generated text per row (no prompt, no EOS, cut before a stop string); empty without tokenizer. */
  texts: string[];
  /** Generated token ids per row (EOS included when it ended the row). */
  tokenIds: number[][];
  finishReasons: FinishReason[];
}

/**
 * Generate continuations of one prompt or a batch (text or token ids). Rows of a batch are
 * left-padded; padding never changes a row's tokens (positions come from the attention mask).
 */
export async function generate(
  model: LlamaForCausalLM,
  tokenizer: GenerationTokenizer | null | undefined,
  prompt: string | string[] | number[] | number[][],
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  await initBackend();
  const rows = encodePrompts(tokenizer, prompt, opts.addSpecialTokens ?? true);
  const maxNew = opts.maxNewTokens ?? 64;
  const eos = new Set(opts.eosTokenIds ?? (tokenizer?.eosTokenIds.length ? tokenizer.eosTokenIds : configEos(model)));
  const padId = tokenizer?.padTokenId ?? [...eos][0] ?? 0;
  const b = rows.length;
  const len = maxOf(rows.map((r) => r.length));
  const padded = rows.some((r) => r.length < len);
  const mask: number[][] = rows.map((r) => [...new Array(len - r.length).fill(0), ...new Array(r.length).fill(1)]);
  const ids = rows.map((r) => [...new Array(len - r.length).fill(padId), ...r]);
  const rng = new Rng(opts.seed ?? 0);
  const streams = rows.map((_, row) => new RowStream(row, tokenizer, opts.stop ?? [], opts.onToken));
  const out: GenerateResult = { texts: rows.map(() => ''), tokenIds: rows.map(() => []), finishReasons: rows.map(() => 'length') };
  const done = rows.map(() => false);
  const cache = KVCache.forConfig(model.config); // sliding layers keep only their window
  // Positions fed so far: the longest prompt, then one more per decoding step.
  const fed = (n: number): void =>
    opts.positions?.check(n, `generation (a prompt of ${len} tokens + new tokens)`, 'shorten the prompt or lower --max-new-tokens');
  try {
    fed(len);
    let logits = step(model, ids, padded ? mask : undefined, cache);
    for (let s = 0; s < maxNew && maxNew > 0; s++) {
      const next: number[] = [];
      for (let r = 0; r < b; r++) {
        if (done[r]) {
          next.push(padId);
          continue;
        }
        const tok = sampleToken(logits.subarray(r * logits.length / b, (r + 1) * logits.length / b), opts, rng);
        out.tokenIds[r].push(tok);
        next.push(tok);
        if (eos.has(tok)) {
          done[r] = true;
          out.finishReasons[r] = 'eos';
        } else if (streams[r].push(tok)) {
          done[r] = true;
          out.finishReasons[r] = 'stop';
        }
      }
      if (done.every((d) => d) || s === maxNew - 1) break;
      if (padded) mask.forEach((m) => m.push(1));
      fed(len + s + 1);
      logits = step(model, next.map((t) => [t]), padded ? mask : undefined, cache);
    }
  } finally {
    cache.dispose();
  }
  streams.forEach((st, r) => (out.texts[r] = st.finish()));
  return out;
}

/** One forward step; returns the last position's logits `[B * V]` on the host. */
function step(model: LlamaForCausalLM, ids: number[][], mask: number[][] | undefined, cache: KVCache): Float32Array {
  const logits = tf.tidy(() => {
    const x = tf.tensor2d(ids, undefined, 'int32');
    const am = mask ? tf.tensor2d(mask, undefined, 'int32') : undefined;
    return model.forward(x, { attentionMask: am, cache, logitsToKeep: 1 });
  });
  const data = logits.dataSync() as Float32Array;
  logits.dispose();
  return data;
}

function configEos(model: LlamaForCausalLM): number[] {
  const e = model.config.eosTokenId;
  return e === undefined ? [] : Array.isArray(e) ? e : [e];
}

function encodePrompts(
  tokenizer: GenerationTokenizer | null | undefined,
  prompt: string | string[] | number[] | number[][],
  addSpecialTokens: boolean,
): number[][] {
  const list: (string | number[])[] =
    typeof prompt === 'string' ? [prompt] : prompt.length > 0 && typeof prompt[0] === 'number' ? [prompt as number[]] : (prompt as (string | number[])[]);
  if (list.length === 0) throw new UserError('generate: no prompt given');
  return list.map((p, i) => {
    if (typeof p === 'string') {
      if (!tokenizer) throw new UserError('generate: a text prompt needs a tokenizer');
      p = tokenizer.encode(p, { addSpecialTokens });
    }
    if (p.length === 0) throw new UserError(`generate: prompt ${i} is empty`);
    return p;
  });
}

/**
 * Incremental detokenisation of one row: emits only text that is final, i.e. not an incomplete
 * UTF-8 sequence and not a possible beginning of a stop string.
 */
class RowStream {
  private readonly ids: number[] = [];
  private emitted = 0;
  private text = '';
  constructor(
    private readonly row: number,
    private readonly tokenizer: GenerationTokenizer | null | undefined,
    private readonly stop: string[],
    private readonly onToken?: (text: string, info: { row: number; tokenId: number }) => void,
  ) {}

  /** Add a token; returns true when a stop string was reached. */
  push(tok: number): boolean {
    this.ids.push(tok);
    if (!this.tokenizer) {
      this.onToken?.('', { row: this.row, tokenId: tok });
      return false;
    }
    let full = this.tokenizer.decode(this.ids, { skipSpecialTokens: true });
    let stopped = false;
    let hold = 0;
    for (const s of this.stop) {
      const at = s ? full.indexOf(s) : -1;
      if (at >= 0) {
        full = full.slice(0, at);
        stopped = true;
      }
    }
    if (!stopped) {
      if (full.endsWith('\uFFFD')) hold = 1;
      for (const s of this.stop) {
        for (let k = Math.min(s.length - 1, full.length); k > hold; k--) {
          if (full.endsWith(s.slice(0, k))) {
            hold = k;
            break;
          }
        }
      }
    }
    this.text = full;
    this.emit(full.length - hold, tok);
    return stopped;
  }

  private emit(upTo: number, tok: number): void {
    if (upTo > this.emitted) {
      this.onToken?.(this.text.slice(this.emitted, upTo), { row: this.row, tokenId: tok });
      this.emitted = upTo;
    }
  }

  /** Final text; flushes anything held back. */
  finish(): string {
    this.emit(this.text.length, this.ids[this.ids.length - 1] ?? -1);
    return this.text;
  }
}
