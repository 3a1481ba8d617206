/**
 * Zero-shot multiple-choice accuracy (the paper's metric), lm-eval-harness style.
 *
 * Each choice is scored by the summed log-likelihood of its tokens given the prompt:
 * - `acc`: the predicted choice is the argmax of the summed log-probabilities;
 * - `acc_norm`: the argmax of the summed log-probability divided by the choice's length in
 *   **characters** (Unicode code points of the choice text, without the leading space — as
 *   lm-eval-harness's `len(choice)`). Ties go to the first choice (numpy argmax).
 * Both are averaged per task, then over tasks (unweighted).
 *
 * Prompt styles (`promptStyle`):
 * - `qa` — `[{context}\n]Question: {question}\nAnswer:`, each choice scored as ` {choice}`;
 * - `chat` — the model's chat template with one user turn (`[{context}\n\n]{question}`) and the
 *   generation prompt; each choice scored as `{choice}` (the assistant's reply);
 * - `plain-chat` — the same with the plain template of src/data/render.ts
 *   (`<|user|>\n...<EOS>\n<|assistant|>\n`), for models fine-tuned with it (no template of their own);
 * - `auto` (default) — `chat` when the tokenizer has a chat template, else `qa`.
 * Tokenization: `tokens(prompt + choice) = tokens(prompt) + tokens(choice)` with
 * `tokens(choice) = encode(prompt + choice)[len(encode(prompt)):]` (see `encodePair`).
 */
import { UserError } from '../errors.ts';
import { parseMultipleChoiceItem, type MultipleChoiceItem } from '../data/formats.ts';
import { readJsonl } from '../data/jsonl.ts';
import { encodePair, plainEosText, renderPlainChat, type TokenizerLike } from '../data/render.ts';
import { loglikelihoods, type CausalLMLike, type LoglikelihoodOptions, type LoglikelihoodRequest } from './loglikelihood.ts';
import { aggregate, type EvalReport } from './report.ts';

export type PromptStyle = 'auto' | 'chat' | 'plain-chat' | 'qa';

export interface MultipleChoiceOptions extends LoglikelihoodOptions {
  /** How the question becomes a prompt (see the module comment). Default `auto`. */
  promptStyle?: PromptStyle;
  /** Prepend BOS to the prompt. Default: whatever the tokenizer does with `addSpecialTokens`. */
  addBos?: boolean;
}

/** Scores and predictions for one item. */
export interface MultipleChoiceItemResult {
  task: string;
  file: string;
  line: number;
  answer: number;
  /** Summed log-likelihood per choice. */
  logLikelihoods: number[];
  /** Scored tokens per choice. */
  tokens: number[];
  /** argmax of `logLikelihoods`. */
  pred: number;
  /** argmax of `logLikelihoods / chars(choice)`. */
  predNorm: number;
}

export interface MultipleChoiceResult {
  report: EvalReport;
  items: MultipleChoiceItemResult[];
  promptStyle: Exclude<PromptStyle, 'auto'>;
}

/**
 * Read and validate multiple-choice JSONL files.
 * @throws UserError `file:line: reason` for a bad line, `file: empty dataset` for an empty file.
 */
export async function readMultipleChoice(files: string[]): Promise<MultipleChoiceItem[]> {
  if (files.length === 0) throw new UserError('no evaluation data files given');
  const items: MultipleChoiceItem[] = [];
  for (const f of files) {
    const before = items.length;
    for await (const l of readJsonl(f)) items.push(parseMultipleChoiceItem(l.value, l.file, l.line));
    if (items.length === before) throw new UserError(`${f}: empty dataset (no records)`);
  }
  return items;
}

/** Resolve `auto`, and check that `chat` is possible. */
export function resolvePromptStyle(tok: TokenizerLike, style: PromptStyle = 'auto'): Exclude<PromptStyle, 'auto'> {
  if (style === 'auto') return tok.hasChatTemplate ? 'chat' : 'qa';
  if (style === 'chat' && !tok.hasChatTemplate) throw new UserError('prompt style "chat" needs a tokenizer with a chat template');
  return style;
}

/** The prompt text of an item and the continuation text of each choice under a prompt style. */
export function multipleChoicePrompt(
  item: Pick<MultipleChoiceItem, 'question' | 'choices' | 'context'>,
  tok: TokenizerLike,
  style: Exclude<PromptStyle, 'auto'>,
): { prompt: string; continuations: string[] } {
  if (style === 'qa') {
    const ctx = item.context ? `${item.context}\n` : '';
    return { prompt: `${ctx}Question: ${item.question}\nAnswer:`, continuations: item.choices.map((c) => ` ${c}`) };
  }
  const content = item.context ? `${item.context}\n\n${item.question}` : item.question;
  const messages = [{ role: 'user' as const, content }];
  const prompt = style === 'chat' ? tok.applyChatTemplate(messages, { addGenerationPrompt: true }) : renderPlainChat(messages, true, plainEosText(tok));
  return { prompt, continuations: [...item.choices] };
}

/** Index of the first maximum (numpy argmax). */
export function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

/**
 * Tokenize every choice of every item under the prompt style, checking each against the
 * options before any forward: a choice that encodes to no token, or to more tokens than
 * `maxLength` (it could not be scored, as the context is what gets truncated), is a
 * {@link UserError} naming `file:line` and the choice. Exported so a training run can check its
 * final-evaluation files before its first step.
 */
export function multipleChoiceRequests(
  items: MultipleChoiceItem[],
  tok: TokenizerLike,
  opts: Pick<MultipleChoiceOptions, 'promptStyle' | 'addBos' | 'maxLength'> = {},
): { style: Exclude<PromptStyle, 'auto'>; requests: LoglikelihoodRequest[]; owner: { item: number; choice: number }[] } {
  if (items.length === 0) throw new UserError('no multiple-choice items to evaluate');
  const style = resolvePromptStyle(tok, opts.promptStyle);
  const requests: LoglikelihoodRequest[] = [];
  const owner: { item: number; choice: number }[] = [];
  for (let i = 0; i < items.length; i++) {
    const { prompt, continuations } = multipleChoicePrompt(items[i], tok, style);
    for (let c = 0; c < continuations.length; c++) {
      const pair = encodePair(tok, prompt, continuations[c], opts.addBos);
      const n = pair.continuationIds.length;
      if (n === 0) throw new UserError(`${items[i].file}:${items[i].line}: choice ${c} encodes to no tokens`);
      if (opts.maxLength !== undefined && n > opts.maxLength) {
        throw new UserError(
          `${items[i].file}:${items[i].line}: choice ${c} is ${n} tokens long, more than the maximum length ${opts.maxLength}; ` +
            'shorten it or raise --max-length',
        );
      }
      requests.push(pair);
      owner.push({ item: i, choice: c });
    }
  }
  return { style, requests, owner };
}

/**
 * Evaluate `model` on multiple-choice items: every choice of every question is scored in
 * batched padded forwards; returns the per-task report (`acc`, `acc_norm`) and per-item scores.
 */
export async function evaluateMultipleChoice(
  model: CausalLMLike,
  tok: TokenizerLike,
  items: MultipleChoiceItem[],
  opts: MultipleChoiceOptions = {},
): Promise<MultipleChoiceResult> {
  const { style, requests, owner } = multipleChoiceRequests(items, tok, opts);
  const scores = await loglikelihoods(model, requests, opts);
  const results: MultipleChoiceItemResult[] = items.map((it) => ({
    task: it.task,
    file: it.file,
    line: it.line,
    answer: it.answer,
    logLikelihoods: new Array(it.choices.length),
    tokens: new Array(it.choices.length),
    pred: 0,
    predNorm: 0,
  }));
  scores.forEach((s, r) => {
    const { item, choice } = owner[r];
    results[item].logLikelihoods[choice] = s.logLikelihood;
    results[item].tokens[choice] = s.tokens;
  });
  for (let i = 0; i < items.length; i++) {
    const res = results[i];
    res.pred = argmax(res.logLikelihoods);
    res.predNorm = argmax(res.logLikelihoods.map((ll, c) => ll / [...items[i].choices[c]].length));
  }
  const report = aggregate(
    'multiple_choice',
    ['acc', 'acc_norm'],
    results.map((r) => ({ task: r.task, values: { acc: r.pred === r.answer ? 1 : 0, acc_norm: r.predNorm === r.answer ? 1 : 0 } })),
  );
  return { report, items: results, promptStyle: style };
}
