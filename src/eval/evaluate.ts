/**
 * `evaluate(options)`: the library call behind `mor eval`. Loads a model directory (and an
 * optional adapter), reads evaluation files — multiple-choice records (`choices`) are scored
 * by log-likelihood (`acc`, `acc_norm`), `{prompt, completion}` records by greedy generation
 * (`exact_match`); the kind is detected per file from its first record — and returns the
 * reports, writing `eval.json`, `eval.md` and `predictions.jsonl` when `outDir` is given.
 */
import fs from 'node:fs';
import path from 'node:path';
import { initBackend } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { parseExactMatchItem, parseMultipleChoiceItem, type ExactMatchItem, type MultipleChoiceItem } from '../data/formats.ts';
import { readJsonl, where } from '../data/jsonl.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { checkOutputDir } from '../io/outputPath.ts';
import { loadConfig, loadModel } from '../models/load.ts';
import { loadAdapter } from '../adapters/load.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { evaluateMultipleChoice, multipleChoiceRequests, type MultipleChoiceResult, type PromptStyle } from './multipleChoice.ts';
import { evaluateExactMatch, modelGenerator, type ExactMatchPromptStyle, type ExactMatchResult } from './exactMatch.ts';
import { formatMarkdownTable, reportToJson } from './report.ts';
import { PositionLimit } from '../models/positions.ts';

export interface EvaluateOptions {
  /** Model directory (HF layout with tokenizer files). */
  model: string;
  /** Adapter directory (`adapter_config.json` + `adapter_model.safetensors`). */
  adapter?: string;
  /** Evaluation JSONL files. */
  data: string[];
  /** Where to write `eval.json`, `eval.md` and `predictions.jsonl` (checked before any scoring). */
  outDir?: string;
  /** How the user named `outDir`, for error messages. Default `--out`. */
  outFlag?: string;
  /** Sequences per forward (multiple choice) / prompts per generate call. Default 16. */
  batchSize?: number;
  /** Multiple-choice prompt style (see multipleChoice.ts). Default `auto`. */
  promptStyle?: PromptStyle;
  /** Exact-match prompt style. Default `raw`. */
  generationPromptStyle?: ExactMatchPromptStyle;
  /** Longest scored sequence (contexts are left-truncated). Default: the model's max positions. */
  maxLength?: number;
  /** Tokens generated per exact-match prompt. Default 32. */
  maxNewTokens?: number;
  /** Evaluate only the first N items of each file. */
  limit?: number;
  /** Progress callback: (phase, done, total). */
  onProgress?: (phase: 'multiple_choice' | 'exact_match', done: number, total: number) => void;
  /** Warning lines (a sequence past the model's max positions). Default: stderr. */
  warn?: (line: string) => void;
  /**
   * The run's position-limit warning, when the evaluation is part of a run that may already
   * have given it (a training run's final evaluation); default: a new one telling `warn`.
   */
  positions?: PositionLimit;
}

export interface EvaluateResult {
  multipleChoice?: MultipleChoiceResult;
  exactMatch?: ExactMatchResult;
  /** The Markdown table(s). */
  markdown: string;
  /** The JSON written to `eval.json`. */
  json: Record<string, unknown>;
  /** Files written (when `outDir`). */
  files: string[];
}

/** Read evaluation files, splitting them by kind (detected from each file's first record). */
export async function readEvalFiles(
  files: string[],
  limit?: number,
): Promise<{ multipleChoice: MultipleChoiceItem[]; exactMatch: ExactMatchItem[] }> {
  if (files.length === 0) throw new UserError('no evaluation data files given (--data)');
  const multipleChoice: MultipleChoiceItem[] = [];
  const exactMatch: ExactMatchItem[] = [];
  for (const f of files) {
    let kind: 'mc' | 'em' | undefined;
    let n = 0;
    for await (const l of readJsonl(f)) {
      if (limit !== undefined && n >= limit) break;
      if (!kind) {
        const v = l.value as Record<string, unknown>;
        if (v && typeof v === 'object' && 'choices' in v) kind = 'mc';
        else if (v && typeof v === 'object' && ('prompt' in v || 'completion' in v)) kind = 'em';
        else {
          throw new UserError(
            `${where(l.file, l.line)}: not an evaluation record (expected "question"/"choices"/"answer" for multiple choice, or "prompt"/"completion" for exact match)`,
          );
        }
      }
      if (kind === 'mc') multipleChoice.push(parseMultipleChoiceItem(l.value, l.file, l.line));
      else exactMatch.push(parseExactMatchItem(l.value, l.file, l.line));
      n++;
    }
    if (n === 0) throw new UserError(`${f}: empty dataset (no records)`);
  }
  return { multipleChoice, exactMatch };
}

/**
 * Everything {@link evaluate} will need, checked without loading the weights: the output
 * folder, every record of the files, and every multiple-choice choice's length in tokens
 * against `maxLength` (default: the model's max positions). A training run calls this before
 * its first step for its `finalEval` files, so a bad file fails in seconds, not after training.
 */
export async function checkEvaluationInputs(
  opts: Pick<EvaluateOptions, 'model' | 'data' | 'outDir' | 'outFlag' | 'promptStyle' | 'maxLength' | 'limit'>,
  tokenizer: Tokenizer = Tokenizer.fromDir(opts.model),
): Promise<void> {
  if (opts.outDir !== undefined) checkOutputDir(opts.outDir, opts.outFlag ?? '--out');
  const data = await readEvalFiles(opts.data, opts.limit);
  if (data.multipleChoice.length > 0) {
    const maxLength = opts.maxLength ?? loadConfig(opts.model).maxPositionEmbeddings;
    multipleChoiceRequests(data.multipleChoice, tokenizer, { promptStyle: opts.promptStyle, maxLength });
  }
}

/** Load, score, report (see the module comment). */
export async function evaluate(opts: EvaluateOptions): Promise<EvaluateResult> {
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 1)) throw new UserError(`limit must be a positive integer, got ${opts.limit}`);
  // Before scoring anything: an output folder that cannot be written must not waste the run.
  if (opts.outDir !== undefined) checkOutputDir(opts.outDir, opts.outFlag ?? '--out');
  const data = await readEvalFiles(opts.data, opts.limit);
  await initBackend();
  const tokenizer = Tokenizer.fromDir(opts.model);
  const base = await loadModel(opts.model);
  try {
    const model = opts.adapter ? loadAdapter(base, opts.adapter).model : base;
    const batchSize = opts.batchSize ?? 16;
    const positions = opts.positions ?? new PositionLimit(base.config.maxPositionEmbeddings, opts.warn ?? ((l) => process.stderr.write(l + '\n')));
    const result: EvaluateResult = { markdown: '', json: {}, files: [] };
    const json: Record<string, unknown> = { model: opts.model, adapter: opts.adapter ?? null, data: opts.data };
    const tables: string[] = [];
    if (data.multipleChoice.length > 0) {
      const mc = await evaluateMultipleChoice(model, tokenizer, data.multipleChoice, {
        batchSize,
        promptStyle: opts.promptStyle,
        maxLength: opts.maxLength ?? base.config.maxPositionEmbeddings,
        positions,
        onProgress: (d, t) => opts.onProgress?.('multiple_choice', d, t),
      });
      result.multipleChoice = mc;
      json.multiple_choice = reportToJson(mc.report, { prompt_style: mc.promptStyle });
      tables.push(formatMarkdownTable(mc.report, { title: `Multiple choice (0-shot, prompt style \`${mc.promptStyle}\`)` }));
    }
    if (data.exactMatch.length > 0) {
      const style = opts.generationPromptStyle ?? 'raw';
      const em = await evaluateExactMatch(data.exactMatch, modelGenerator(model, tokenizer, { maxNewTokens: opts.maxNewTokens, positions }), {
        batchSize,
        promptStyle: style,
        tokenizer,
        onProgress: (d, t) => opts.onProgress?.('exact_match', d, t),
      });
      result.exactMatch = em;
      json.exact_match = reportToJson(em.report, { prompt_style: style });
      tables.push(formatMarkdownTable(em.report, { title: 'Exact match (greedy generation)' }));
    }
    result.json = json;
    result.markdown = tables.join('\n');
    if (opts.outDir) result.files = await writeOutputs(opts.outDir, result);
    return result;
  } finally {
    base.dispose();
  }
}

async function writeOutputs(dir: string, r: EvaluateResult): Promise<string[]> {
  fs.mkdirSync(dir, { recursive: true });
  const files = ['eval.json', 'eval.md', 'predictions.jsonl'].map((f) => path.join(dir, f));
  const lines = [
    ...(r.multipleChoice?.items ?? []).map((i) => ({
      kind: 'multiple_choice', task: i.task, file: i.file, line: i.line, answer: i.answer, pred: i.pred, pred_norm: i.predNorm, loglikelihoods: i.logLikelihoods,
    })),
    ...(r.exactMatch?.items ?? []).map((i) => ({
      kind: 'exact_match', task: i.task, file: i.file, line: i.line, prediction: i.prediction, reference: i.reference, correct: i.correct,
    })),
  ];
  await writeFileAtomic(files[0], JSON.stringify(r.json, null, 2) + '\n');
  await writeFileAtomic(files[1], r.markdown);
  await writeFileAtomic(files[2], lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  return files;
}
