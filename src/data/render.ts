/**
 * Records -> token ids + labels, with loss only where the model should learn.
 *
 * | format              | text fed to the model                               | labels (loss)            |
 * |---------------------|-----------------------------------------------------|--------------------------|
 * | `{text}`            | BOS? + text + EOS                                   | text + EOS               |
 * | `{prompt,completion}`| BOS? + prompt + completion + EOS (no separator, TRL)| completion + EOS         |
 * | chat                | the model's chat template, or the plain template     | every assistant turn (incl. its end token) |
 *
 * BOS follows the tokenizer (prepended when `encode(x, {addSpecialTokens: true})` would add it,
 * and never doubled when a chat template already writes it); EOS is appended after the
 * completion / text so the model learns to stop, like transformers/TRL. With a chat template
 * that closes assistant turns with an EOS token nothing is appended; otherwise one EOS ends
 * the sequence.
 *
 * **Plain chat template** (used when the tokenizer has no chat template, or when asked): the
 * Zephyr format that src/tokenizer uses as its default template, so training, `mor generate`
 * and evaluation agree:
 * ```
 * <|system|>\n{content}<EOS>\n<|user|>\n{content}<EOS>\n<|assistant|>\n{content}<EOS>\n ...
 * ```
 * where `<EOS>` is the tokenizer's EOS id (inserted as an id, so it works even when its text
 * does not round-trip; nothing when there is none) and the final newline is omitted. The
 * labelled tokens are each assistant content and its EOS. The generation prompt is
 * `<|assistant|>\n`.
 *
 * With the model's template, assistant spans are located by rendering the conversation up to
 * each assistant turn with and without the generation prompt (TRL's / open-instruct's method;
 * `Tokenizer.chatSegments` when the tokenizer offers it): the span is everything the turn adds,
 * its end-of-turn tokens included.
 *
 * Token/label alignment: the text is tokenized once as a whole; a boundary between a masked
 * and a labelled span at character `b` maps to the longest common prefix of
 * `encode(text[:b])` and `encode(text)` (open-instruct's prefix method), so the ids are exactly
 * what the tokenizer gives for the full text and a token straddling the boundary goes to the
 * span after it.
 */
import { UserError } from '../errors.ts';
import type { ChatMessage, DataRecord } from './formats.ts';
import { where } from './jsonl.ts';

/** What the data and eval code need from a tokenizer (src/tokenizer's `Tokenizer` fits it). */
export interface TokenizerLike {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  readonly bosTokenId?: number;
  readonly eosTokenIds: number[];
  readonly padTokenId?: number;
  readonly hasChatTemplate: boolean;
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string;
  /**
   * Optional: the rendered conversation split into texts, assistant turns marked trainable
   * (src/tokenizer's `Tokenizer.chatSegments`); used instead of our own prefix renders.
   */
  chatSegments?(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): { text: string; trainable: boolean }[];
}

/** Which template renders chat records. */
export type ChatTemplateMode = 'auto' | 'model' | 'plain';

export interface RenderOptions {
  /** `auto` (default): the model's template when it has one, else the plain template; `model`: require it. */
  chatTemplate?: ChatTemplateMode;
  /** Prepend BOS. Default: whatever the tokenizer does with `addSpecialTokens: true`. */
  addBos?: boolean;
  /**
   * Append EOS after text / completion, and after the last assistant turn when the model's
   * template writes none. Default true. (The plain template always ends turns with EOS.)
   */
  addEos?: boolean;
}

/** A tokenized example: ids and labels of equal length (`-100` = no loss). Labels are NOT shifted. */
export interface RenderedExample {
  inputIds: number[];
  labels: number[];
  task: string;
}

/** Label value ignored by the loss (PyTorch / HF convention). */
export const IGNORE_INDEX = -100;

/** A piece of a rendered sequence: text to tokenize, or literal token ids. */
type Piece = { text: string; train: boolean } | { ids: number[]; train: boolean };

const PLAIN_TAGS: Record<ChatMessage['role'], string> = {
  system: '<|system|>\n',
  user: '<|user|>\n',
  assistant: '<|assistant|>\n',
};

/** Generation prompt of the plain template. */
export const PLAIN_GENERATION_PROMPT = PLAIN_TAGS.assistant;

/**
 * The plain template as text, for prompts: every message as `<|role|>\n{content}{eosText}\n`, then
 * `<|assistant|>\n` when `addGenerationPrompt`. `eosText` is the EOS token's text (see
 * {@link plainEosText}).
 */
export function renderPlainChat(messages: ChatMessage[], addGenerationPrompt: boolean, eosText = ''): string {
  let s = '';
  for (const m of messages) s += PLAIN_TAGS[m.role] + m.content + eosText + '\n';
  return addGenerationPrompt ? s + PLAIN_GENERATION_PROMPT : s;
}

/** The EOS token as text when it encodes back to exactly that id, else `''`. */
export function plainEosText(tok: TokenizerLike): string {
  const eos = tok.eosTokenIds[0];
  if (eos === undefined) return '';
  const text = tok.decode([eos]);
  const back = tok.encode(text, { addSpecialTokens: false });
  return back.length === 1 && back[0] === eos ? text : '';
}

/** Whether `encode(x, {addSpecialTokens: true})` prepends the BOS token (cached per tokenizer). */
export function tokenizerAddsBos(tok: TokenizerLike): boolean {
  let v = addsBosCache.get(tok);
  if (v === undefined) {
    const probe = tok.encode('a', { addSpecialTokens: true });
    v = tok.bosTokenId !== undefined && probe[0] === tok.bosTokenId;
    addsBosCache.set(tok, v);
  }
  return v;
}
const addsBosCache = new WeakMap<TokenizerLike, boolean>();

/** Whether chat records of this tokenizer use its own template under `mode`. */
export function usesModelTemplate(tok: TokenizerLike, mode: ChatTemplateMode = 'auto'): boolean {
  if (mode === 'plain') return false;
  if (mode === 'model' && !tok.hasChatTemplate) throw new UserError('chatTemplate "model" requested but the tokenizer has no chat template');
  return tok.hasChatTemplate;
}

/**
 * Tokenize a validated record into ids and labels (see the module comment for the rules).
 * @throws UserError `file:line: ...` when the chat template cannot be applied to the record.
 */
export function renderRecord(record: DataRecord, tok: TokenizerLike, opts: RenderOptions = {}): RenderedExample {
  const addEos = opts.addEos ?? true;
  const eos = tok.eosTokenIds.length > 0 ? tok.eosTokenIds[0] : undefined;
  const eosPiece: Piece[] = addEos && eos !== undefined ? [{ ids: [eos], train: true }] : [];
  let pieces: Piece[];
  let appendEosIfMissing = false;
  switch (record.format) {
    case 'text':
      pieces = [{ text: record.text, train: true }, ...eosPiece];
      break;
    case 'prompt_completion':
      pieces = [{ text: record.prompt, train: false }, { text: record.completion, train: true }, ...eosPiece];
      break;
    case 'chat':
      if (usesModelTemplate(tok, opts.chatTemplate)) {
        pieces = modelTemplatePieces(record.messages, tok, where(record.file, record.line));
        appendEosIfMissing = addEos && eos !== undefined;
      } else {
        pieces = plainTemplatePieces(record.messages, eos);
      }
      break;
  }
  const { ids, labels } = tokenizePieces(pieces, tok);
  if (appendEosIfMissing && !labels.some((l) => tok.eosTokenIds.includes(l))) {
    ids.push(eos!);
    labels.push(eos!);
  }
  const addBos = opts.addBos ?? tokenizerAddsBos(tok);
  if (addBos && tok.bosTokenId !== undefined && ids[0] !== tok.bosTokenId) {
    ids.unshift(tok.bosTokenId);
    labels.unshift(IGNORE_INDEX);
  }
  return { inputIds: ids, labels, task: record.task };
}

/** Pieces of a chat rendered with the model's template: assistant spans located by prefix renders. */
function modelTemplatePieces(messages: ChatMessage[], tok: TokenizerLike, place: string): Piece[] {
  const apply = (msgs: ChatMessage[], gen: boolean): string => {
    try {
      return tok.applyChatTemplate(msgs, { addGenerationPrompt: gen });
    } catch (e) {
      throw new UserError(`${place}: the chat template failed on this conversation (${(e as Error).message.split('\n')[0]})`);
    }
  };
  if (tok.chatSegments) {
    let segs: { text: string; trainable: boolean }[];
    try {
      segs = tok.chatSegments(messages, { addGenerationPrompt: false });
    } catch (e) {
      throw new UserError(`${place}: ${(e as Error).message.split('\n')[0]}`);
    }
    return segs.filter((g) => g.text.length > 0).map((g) => ({ text: g.text, train: g.trainable }));
  }
  const full = apply(messages, false);
  const pieces: Piece[] = [];
  let pos = 0;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i].role !== 'assistant') continue;
    const before = apply(messages.slice(0, i), true);
    const through = apply(messages.slice(0, i + 1), false);
    if (!through.startsWith(before) || !full.startsWith(through) || before.length < pos) {
      throw new UserError(
        `${place}: the chat template does not render message ${i} as a continuation of the previous ones; ` +
          'use the plain template (chatTemplate: "plain")',
      );
    }
    pieces.push({ text: full.slice(pos, before.length), train: false });
    pieces.push({ text: full.slice(before.length, through.length), train: true });
    pos = through.length;
  }
  pieces.push({ text: full.slice(pos), train: false });
  return pieces.filter((p) => !('text' in p) || p.text.length > 0);
}

/** Pieces of a chat in the plain template; `eos` is inserted as an id after every message. */
function plainTemplatePieces(messages: ChatMessage[], eos: number | undefined): Piece[] {
  const pieces: Piece[] = [];
  let pending = '';
  for (const m of messages) {
    const train = m.role === 'assistant';
    if (train) {
      pieces.push({ text: pending + PLAIN_TAGS.assistant, train: false });
      pieces.push({ text: m.content, train: true });
    } else {
      pieces.push({ text: pending + PLAIN_TAGS[m.role] + m.content, train: false });
    }
    if (eos !== undefined) pieces.push({ ids: [eos], train });
    pending = '\n';
  }
  return pieces.filter((p) => !('text' in p) || p.text.length > 0);
}

/**
 * Tokenize pieces without special tokens: each maximal run of text pieces is encoded as one
 * string and its piece boundaries mapped to tokens by common prefixes; id pieces are copied.
 */
function tokenizePieces(pieces: Piece[], tok: TokenizerLike): { ids: number[]; labels: number[] } {
  const ids: number[] = [];
  const labels: number[] = [];
  let i = 0;
  while (i < pieces.length) {
    const p = pieces[i];
    if ('ids' in p) {
      for (const id of p.ids) {
        ids.push(id);
        labels.push(p.train ? id : IGNORE_INDEX);
      }
      i++;
      continue;
    }
    const run: { text: string; train: boolean }[] = [];
    while (i < pieces.length && 'text' in pieces[i]) run.push(pieces[i++] as { text: string; train: boolean });
    const full = run.map((r) => r.text).join('');
    const runIds = tok.encode(full, { addSpecialTokens: false });
    // Token index where each piece starts; piece k covers [starts[k], starts[k+1]).
    const starts = [0];
    let chars = 0;
    for (let k = 0; k < run.length - 1; k++) {
      chars += run[k].text.length;
      const pre = tok.encode(full.slice(0, chars), { addSpecialTokens: false });
      starts.push(Math.max(starts[k], commonPrefix(pre, runIds)));
    }
    starts.push(runIds.length);
    for (let k = 0; k < run.length; k++) {
      for (let t = starts[k]; t < starts[k + 1]; t++) {
        ids.push(runIds[t]);
        labels.push(run[k].train ? runIds[t] : IGNORE_INDEX);
      }
    }
  }
  return { ids, labels };
}

function commonPrefix(a: number[], b: number[]): number {
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a[k] === b[k]) k++;
  return k;
}

/**
 * lm-eval-harness style tokenization of a (context, continuation) pair, so that the scored
 * tokens are exactly those the full string gives after the context: trailing whitespace of the
 * context moves to the continuation, `whole = encode(context + continuation)`,
 * `contextIds = encode(context)`, `continuationIds = whole[contextIds.length:]`. BOS is prepended
 * to the context when `addBos` (and not already there); an empty context becomes `[BOS]` (or
 * `[EOS]` when there is no BOS) so the first continuation token has something to condition on.
 */
export function encodePair(
  tok: TokenizerLike,
  context: string,
  continuation: string,
  addBos: boolean = tokenizerAddsBos(tok),
): { contextIds: number[]; continuationIds: number[] } {
  const nSpaces = context.length - context.trimEnd().length;
  if (nSpaces > 0) {
    continuation = context.slice(context.length - nSpaces) + continuation;
    context = context.slice(0, context.length - nSpaces);
  }
  const whole = tok.encode(context + continuation, { addSpecialTokens: false });
  let contextIds = context === '' ? [] : tok.encode(context, { addSpecialTokens: false });
  const continuationIds = whole.slice(contextIds.length);
  if (addBos && tok.bosTokenId !== undefined && contextIds[0] !== tok.bosTokenId) contextIds = [tok.bosTokenId, ...contextIds];
  if (contextIds.length === 0) {
    const start = tok.bosTokenId ?? tok.eosTokenIds[0];
    if (start === undefined) throw new UserError('empty prompt and the tokenizer has neither BOS nor EOS to start from');
    contextIds = [start];
  }
  return { contextIds, continuationIds };
}
