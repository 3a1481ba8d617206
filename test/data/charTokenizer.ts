/**
 * A tiny character-level tokenizer for data/eval tests, so expected ids and labels can be
 * written by hand: id = code point + 3 (0 pad, 1 BOS, 2 EOS); `^` and `$` in text are the
 * special tokens BOS and EOS; optional merges turn a listed pair of characters into one id
 * (greedy, left to right), to exercise tokens that straddle a boundary.
 * The optional chat template is `^` then `S:{c}\n` / `U:{c}\n` / `A:{c}$\n` per message and
 * `A:` as generation prompt.
 */
import type { ChatMessage } from '../../src/data/formats.ts';
import type { TokenizerLike } from '../../src/data/render.ts';

export const PAD = 0;
export const BOS = 1;
export const EOS = 2;

/** Id of a single character. */
export function c(ch: string): number {
  if (ch === '^') return BOS;
  if (ch === '$') return EOS;
  return ch.codePointAt(0)! + 3;
}

/** Ids of a string, character by character (no merges). */
export function cs(s: string): number[] {
  return [...s].map(c);
}

export class CharTokenizer implements TokenizerLike {
  readonly bosTokenId: number | undefined = BOS;
  readonly eosTokenIds = [EOS];
  readonly padTokenId: number | undefined = PAD;
  readonly hasChatTemplate: boolean;
  private readonly merges: Map<string, number>;
  private readonly addsBos: boolean;
  /** Calls of encode, for checks that work is cached. */
  encodeCalls = 0;

  constructor(opts: { chatTemplate?: boolean; merges?: Record<string, number>; addsBos?: boolean; padTokenId?: number } = {}) {
    this.hasChatTemplate = opts.chatTemplate ?? false;
    this.merges = new Map(Object.entries(opts.merges ?? {}));
    this.addsBos = opts.addsBos ?? true;
    if ('padTokenId' in opts) this.padTokenId = opts.padTokenId;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    this.encodeCalls++;
    const chars = [...text];
    const out: number[] = opts.addSpecialTokens ?? true ? (this.addsBos ? [BOS] : []) : [];
    for (let i = 0; i < chars.length; i++) {
      const pair = i + 1 < chars.length ? chars[i] + chars[i + 1] : '';
      const m = this.merges.get(pair);
      if (m !== undefined) {
        out.push(m);
        i++;
      } else out.push(c(chars[i]));
    }
    return out;
  }

  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const inv = new Map([...this.merges].map(([k, v]) => [v, k]));
    return ids
      .filter((id) => !(opts.skipSpecialTokens && (id === BOS || id === EOS || id === PAD)))
      .map((id) => inv.get(id) ?? (id === BOS ? '^' : id === EOS ? '$' : id === PAD ? '' : String.fromCodePoint(id - 3)))
      .join('');
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string {
    if (!this.hasChatTemplate) throw new Error('no chat template');
    let s = '^';
    for (const m of messages) {
      if (m.role === 'system') s += `S:${m.content}\n`;
      else if (m.role === 'user') s += `U:${m.content}\n`;
      else s += `A:${m.content}$\n`;
    }
    return opts.addGenerationPrompt ? s + 'A:' : s;
  }
}
