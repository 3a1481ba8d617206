/**
 * The measurements of one model (with or without an adapter) that the demo and the experiment
 * report: 0-shot multiple-choice accuracy per task, and greedy generation latency per token.
 */
import { tf } from '../backend/tf.ts';
import type { MultipleChoiceItem } from '../data/formats.ts';
import { evaluateMultipleChoice, multipleChoicePrompt, type PromptStyle } from '../eval/multipleChoice.ts';
import { generate } from '../generate/generate.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';

/** Accuracy per task and its unweighted mean over tasks (fractions in [0, 1]). */
export interface AccuracyResult {
  /** Task -> `acc` (argmax of summed log-likelihood). */
  tasks: Record<string, number>;
  /** Task -> `acc_norm` (per-character normalised). */
  tasksNorm: Record<string, number>;
  /** Task -> items scored. */
  n: Record<string, number>;
  /** Mean of `tasks` over tasks (the paper's "average"). */
  average: number;
  averageNorm: number;
  /** Seconds the evaluation took. */
  seconds: number;
  /**
   * Per item, in the order of the items scored: `1` right (`acc`), `0` wrong; what the paired
   * bootstrap resamples (bootstrap.ts). Absent in results written before it was recorded.
   */
  correct?: string;
}

/**
 * The prompt style that matches how the training data was rendered (src/data/render.ts): the
 * model's chat template when it has one, else the plain template.
 */
export function trainingPromptStyle(tok: Tokenizer): Exclude<PromptStyle, 'auto' | 'qa'> {
  return tok.hasChatTemplate ? 'chat' : 'plain-chat';
}

/** Options of {@link measureAccuracy}. */
export interface AccuracyOptions {
  batchSize: number;
  maxLength: number;
  onProgress?: (done: number, total: number) => void;
}

/** 0-shot multiple-choice accuracy of `model` on `items`, per task. */
export async function measureAccuracy(
  model: LlamaForCausalLM,
  tok: Tokenizer,
  items: MultipleChoiceItem[],
  o: AccuracyOptions,
): Promise<AccuracyResult> {
  const t0 = performance.now();
  const r = await evaluateMultipleChoice(model, tok, items, {
    batchSize: o.batchSize,
    maxLength: o.maxLength,
    promptStyle: trainingPromptStyle(tok),
    onProgress: o.onProgress,
  });
  const tasks: Record<string, number> = {};
  const tasksNorm: Record<string, number> = {};
  const n: Record<string, number> = {};
  for (const t of r.report.tasks) {
    tasks[t.task] = t.metrics.acc;
    tasksNorm[t.task] = t.metrics.acc_norm;
    n[t.task] = t.n;
  }
  return {
    tasks,
    tasksNorm,
    n,
    average: r.report.average.acc,
    averageNorm: r.report.average.acc_norm,
    correct: r.items.map((it) => (it.pred === it.answer ? '1' : '0')).join(''),
    seconds: (performance.now() - t0) / 1000,
  };
}

/** Options of {@link measureLatency}. */
export interface LatencyOptions {
  /** Tokens generated per prompt (EOS ignored so every prompt yields exactly this many). */
  newTokens: number;
}

/**
 * Greedy generation latency in milliseconds per generated token: the median over prompts of
 * (time of one generation / tokens generated), batch 1, KV cache, prefill included; one short
 * warm-up generation first.
 */
export async function measureLatency(model: LlamaForCausalLM, tok: Tokenizer, items: MultipleChoiceItem[], o: LatencyOptions): Promise<number> {
  const style = trainingPromptStyle(tok);
  const prompts = items.map((it) => multipleChoicePrompt(it, tok, style).prompt);
  if (prompts.length === 0) return Number.NaN;
  const opts = { maxNewTokens: o.newTokens, eosTokenIds: [] as number[] };
  await generate(model, tok, prompts[0], { ...opts, maxNewTokens: 2 });
  const before = tf.memory().numTensors;
  const rates: number[] = [];
  for (const p of prompts) {
    const t0 = performance.now();
    const r = await generate(model, tok, p, opts);
    rates.push((performance.now() - t0) / Math.max(1, r.tokenIds[0].length));
  }
  if (tf.memory().numTensors > before) throw new Error(`generation leaked ${tf.memory().numTensors - before} tensors`);
  // Median over prompts: robust to a prompt slowed down by other processes.
  rates.sort((a, b) => a - b);
  const mid = rates.length >> 1;
  return rates.length % 2 ? rates[mid] : (rates[mid - 1] + rates[mid]) / 2;
}

/** Items of each task: at most `limit` per task (file order), optionally only `tasks`. */
export function selectItems(items: MultipleChoiceItem[], opts: { tasks?: string[]; limitPerTask?: number }): MultipleChoiceItem[] {
  const count = new Map<string, number>();
  const wanted = opts.tasks ? new Set(opts.tasks) : undefined;
  return items.filter((it) => {
    if (wanted && !wanted.has(it.task)) return false;
    const c = count.get(it.task) ?? 0;
    if (opts.limitPerTask !== undefined && c >= opts.limitPerTask) return false;
    count.set(it.task, c + 1);
    return true;
  });
}

/** The first `perTask` items of every task, interleaved by task (latency prompts cover the tasks). */
export function latencyItems(items: MultipleChoiceItem[], total: number): MultipleChoiceItem[] {
  const byTask = new Map<string, MultipleChoiceItem[]>();
  for (const it of items) byTask.set(it.task, [...(byTask.get(it.task) ?? []), it]);
  const out: MultipleChoiceItem[] = [];
  for (let k = 0; out.length < total; k++) {
    let added = false;
    for (const list of byTask.values()) {
      if (k < list.length && out.length < total) {
        out.push(list[k]);
        added = true;
      }
    }
    if (!added) break;
  }
  return out;
}
