/**
 * Generation-based exact match on `{prompt, completion}` data.
 *
 * The model generates from each prompt (greedy, through a {@link GenerateFn}, e.g. one built on
 * src/generate/generate.ts); the prediction and the reference completion are normalised like
 * SQuAD's `normalize_answer` — lower case, punctuation removed, the articles a/an/the removed,
 * whitespace collapsed — and compared for equality. With `firstLine` (default true) only as many
 * non-empty lines of the generation count as the reference has (usually one), since small
 * models rarely stop on their own.
 *
 * Prompt styles: `raw` (default; the prompt as written, as it was trained on in the
 * prompt/completion format), `chat` (the model's chat template, one user turn + generation
 * prompt), `plain-chat` (the plain template of src/data/render.ts).
 */
import { UserError } from '../errors.ts';
import { parseExactMatchItem, type ExactMatchItem } from '../data/formats.ts';
import { readJsonl } from '../data/jsonl.ts';
import { plainEosText, renderPlainChat, tokenizerAddsBos, type TokenizerLike } from '../data/render.ts';
import { generate } from '../generate/generate.ts';
import type { PositionLimit } from '../models/positions.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { aggregate, type EvalReport } from './report.ts';

/**
 * Produces the model's continuation of each prompt (the generated text only, without the
 * prompt), in order. {@link modelGenerator} builds one from a model and tokenizer.
 */
export type GenerateFn = (prompts: string[]) => Promise<string[]> | string[];

/** A greedy {@link GenerateFn} on src/generate/generate.ts (BOS handled like training: once). */
export function modelGenerator(
  model: LlamaForCausalLM,
  tok: TokenizerLike,
  opts: { maxNewTokens?: number; stop?: string[]; positions?: PositionLimit } = {},
): GenerateFn {
  const addBos = tokenizerAddsBos(tok);
  return async (prompts) => {
    const ids = prompts.map((p) => {
      const x = tok.encode(p, { addSpecialTokens: false });
      return addBos && tok.bosTokenId !== undefined && x[0] !== tok.bosTokenId ? [tok.bosTokenId, ...x] : x;
    });
    const out = await generate(model, tok, ids, { maxNewTokens: opts.maxNewTokens ?? 32, stop: opts.stop, temperature: 0, positions: opts.positions });
    return out.texts;
  };
}

export type ExactMatchPromptStyle = 'raw' | 'chat' | 'plain-chat';

export interface ExactMatchOptions {
  /** Compare only the first k non-empty lines of the generation, k = the reference's (default true). */
  firstLine?: boolean;
  /** How the prompt is presented (default `raw`); `chat`/`plain-chat` need `tokenizer`. */
  promptStyle?: ExactMatchPromptStyle;
  tokenizer?: TokenizerLike;
  /** Prompts per generate call (default 8). */
  batchSize?: number;
  /** Called after each batch with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface ExactMatchItemResult {
  task: string;
  file: string;
  line: number;
  prediction: string;
  reference: string;
  correct: boolean;
}

export interface ExactMatchResult {
  report: EvalReport;
  items: ExactMatchItemResult[];
}

/** SQuAD-style answer normalisation (see the module comment). */
export function normalizeAnswer(s: string): string {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .join(' ');
}

function nonEmptyLines(s: string): string[] {
  return s.split('\n').filter((l) => l.trim() !== '');
}

function firstLines(s: string, k: number): string {
  return nonEmptyLines(s).slice(0, k).join('\n');
}

/** Read and validate `{prompt, completion, task?}` JSONL files. @throws UserError `file:line: reason`. */
export async function readExactMatch(files: string[]): Promise<ExactMatchItem[]> {
  if (files.length === 0) throw new UserError('no evaluation data files given');
  const items: ExactMatchItem[] = [];
  for (const f of files) {
    const before = items.length;
    for await (const l of readJsonl(f)) items.push(parseExactMatchItem(l.value, l.file, l.line));
    if (items.length === before) throw new UserError(`${f}: empty dataset (no records)`);
  }
  return items;
}

/** The text handed to the generator for an item. */
export function exactMatchPrompt(item: Pick<ExactMatchItem, 'prompt'>, style: ExactMatchPromptStyle, tok?: TokenizerLike): string {
  if (style === 'raw') return item.prompt;
  if (!tok) throw new Error(`prompt style "${style}" needs a tokenizer`);
  const messages = [{ role: 'user' as const, content: item.prompt }];
  if (style === 'plain-chat') return renderPlainChat(messages, true, plainEosText(tok));
  if (!tok.hasChatTemplate) throw new UserError('prompt style "chat" needs a tokenizer with a chat template');
  return tok.applyChatTemplate(messages, { addGenerationPrompt: true });
}

/** Generate for every item (in batches) and report `exact_match` per task and on average. */
export async function evaluateExactMatch(
  items: ExactMatchItem[],
  generate: GenerateFn,
  opts: ExactMatchOptions = {},
): Promise<ExactMatchResult> {
  if (items.length === 0) throw new UserError('no exact-match items to evaluate');
  const firstLine = opts.firstLine ?? true;
  const style = opts.promptStyle ?? 'raw';
  const batchSize = opts.batchSize ?? 8;
  const results: ExactMatchItemResult[] = [];
  for (let start = 0; start < items.length; start += batchSize) {
    const batch = items.slice(start, start + batchSize);
    const outs = await generate(batch.map((item) => exactMatchPrompt(item, style, opts.tokenizer)));
    if (outs.length !== batch.length) throw new Error(`generator returned ${outs.length} texts for ${batch.length} prompts`);
    batch.forEach((item, k) => {
      let prediction = outs[k];
      if (firstLine) prediction = firstLines(prediction, nonEmptyLines(item.completion).length || 1);
      const correct = normalizeAnswer(prediction) === normalizeAnswer(item.completion);
      results.push({ task: item.task, file: item.file, line: item.line, prediction, reference: item.completion, correct });
    });
    opts.onProgress?.(results.length, items.length);
  }
  const report = aggregate(
    'exact_match',
    ['exact_match'],
    results.map((r) => ({ task: r.task, values: { exact_match: r.correct ? 1 : 0 } })),
  );
  return { report, items: results };
}
