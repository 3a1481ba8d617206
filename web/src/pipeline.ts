/**
 * The page's work, as plain functions over the library: read suite tasks through a
 * FileSource, score multiple-choice accuracy, fine-tune MoR, route, probe. The Web Worker
 * (worker.ts) calls them with the browser build; scripts/web-bench.mjs calls the same
 * functions in Node (the `mor-peft` import then resolves to the Node build), so the browser
 * and Node timings in the README are of the same run.
 */
import {
  BatchStream, DataMixture, batchLoss, batchTargets, getPeftModel, measureAccuracy, padIdOf, parseAdapterConfig,
  parseDataRecord, parseJsonlText, parseMultipleChoiceItem, readRequired, renderRecord, routingByTask, tf, train,
  truncateExample,
} from 'mor-peft';
import type {
  AccuracyResult, DataRecord, FileSource, LlamaForCausalLM, MultipleChoiceItem, PeftModel, RenderedExample, Tokenizer,
} from 'mor-peft';
import type { RunSettings } from './settings.ts';

/** One suite task: its training records and its test items. */
export interface SuiteTask {
  name: string;
  train: DataRecord[];
  test: MultipleChoiceItem[];
}

/** `<name>/train.jsonl` and `<name>/test.mc.jsonl` of each task in `src` (the suite's layout). */
export async function loadTasks(src: FileSource, names: readonly string[]): Promise<SuiteTask[]> {
  const text = async (file: string) => new TextDecoder().decode(await readRequired(src, file, 'a suite task file'));
  const tasks: SuiteTask[] = [];
  for (const name of names) {
    const trainFile = `${name}/train.jsonl`;
    const testFile = `${name}/test.mc.jsonl`;
    const train = parseJsonlText(await text(trainFile), trainFile).map((l) => parseDataRecord(l.value, l.file, l.line, name));
    const test = parseJsonlText(await text(testFile), testFile).map((l) => parseMultipleChoiceItem(l.value, l.file, l.line, name));
    tasks.push({ name, train, test });
  }
  return tasks;
}

/** The first `perTask` test items of every task. */
export function evalItems(tasks: readonly SuiteTask[], perTask: number): MultipleChoiceItem[] {
  return tasks.flatMap((t) => t.test.slice(0, perTask));
}

/** 0-shot multiple-choice accuracy per task (the demo's measurement). */
export function scoreAccuracy(
  model: LlamaForCausalLM, tok: Tokenizer, items: MultipleChoiceItem[], onProgress?: (done: number, total: number) => void,
): Promise<AccuracyResult> {
  return measureAccuracy(model, tok, items, { batchSize: 16, maxLength: 128, onProgress });
}

/** One logged update, as the page plots it. */
export interface StepPoint {
  step: number;
  loss: number;
  tokensPerSec: number;
}

/** What {@link fineTuneMor} returns; `peft` wraps `model` (now with MoR layers) until disposed. */
export interface FineTuned {
  peft: PeftModel<LlamaForCausalLM>;
  losses: StepPoint[];
  trainSeconds: number;
  /** Trained tokens (attention-mask ones) per second over the whole run. */
  tokensPerSec: number;
  trainableParams: number;
}

/** Attach MoR to `model` and train it on the tasks' mixed training records. */
export async function fineTuneMor(
  model: LlamaForCausalLM, tok: Tokenizer, tasks: readonly SuiteTask[], s: RunSettings, onStep?: (p: StepPoint, total: number) => void,
): Promise<FineTuned> {
  const adapter = parseAdapterConfig({ kind: 'mor', r: s.r, alpha: 2 * s.r, numExperts: s.numExperts, targetModules: s.targetModules, seed: s.seed }, 'page adapter');
  const mixture = DataMixture.fromRecords(tasks.map((t) => ({ path: `${t.name}/train.jsonl`, records: t.train })), tok, { seed: s.seed, maxLength: s.maxLength });
  const stream = new BatchStream(mixture, { batchSize: s.batchSize });
  const peft = getPeftModel(model, adapter);
  const losses: StepPoint[] = [];
  let tokens = 0;
  const t0 = performance.now();
  try {
    await train({
      params: peft.trainableParameters(),
      lossFn: (b, ctx) => batchLoss(peft.model, b, ctx),
      data: { next: () => stream.next(), getState: () => stream.state(), setState: () => { throw new Error('the page does not resume runs'); } },
      steps: s.steps,
      microBatchWeight: batchTargets,
      schedule: { lr: s.lr, warmupSteps: s.warmup, kind: 'cosine', minLr: 0 },
      maxGradNorm: 1,
      seed: s.seed,
      logEvery: 1,
      onStep: (rec, total) => {
        tokens += rec.tokens;
        const p = { step: rec.step, loss: rec.loss, tokensPerSec: rec.tokensPerSec };
        losses.push(p);
        onStep?.(p, total);
      },
    });
  } catch (e) {
    peft.dispose();
    throw e;
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  return { peft, losses, trainSeconds, tokensPerSec: tokens / trainSeconds, trainableParams: peft.countParameters().trainable };
}

/** Mean routing weight per expert, by task, averaged over the MoR layers: `weights[task][expert]`. */
export interface RoutingSummary {
  tasks: string[];
  /** `[tasks.length][numExperts]`, each row summing to 1 for a softmax router. */
  weights: number[][];
  layers: number;
}

/** Route the first training examples of each task through the trained model (inference mode). */
export function routingSummary(peft: PeftModel<LlamaForCausalLM>, tok: Tokenizer, tasks: readonly SuiteTask[], s: RunSettings): RoutingSummary {
  const examples: RenderedExample[] = [];
  for (const t of tasks) {
    for (const rec of t.train.slice(0, s.routingExamplesPerTask)) {
      const ex = truncateExample(renderRecord(rec, tok), s.maxLength, 'truncate');
      if (ex) examples.push(ex);
    }
  }
  const stats = routingByTask(peft.model, examples, s.batchSize, padIdOf(tok), s.routingExamplesPerTask);
  const names = stats.groups().sort();
  let layers = 0;
  const weights = names.map((task) => {
    const means = [...stats.means(task).values()];
    layers = means.length;
    const row = new Array<number>(means[0]?.length ?? 0).fill(0);
    for (const v of means) v.forEach((x, e) => { row[e] += x / means.length; });
    return row;
  });
  return { tasks: names, weights, layers };
}

/** Token ids and logits `[1, T, V]` (flattened) of `prompt`: the numbers a downloaded adapter must reproduce. */
export function probeLogits(model: LlamaForCausalLM, tok: Tokenizer, prompt: string): { ids: number[]; logits: Float32Array } {
  const ids = tok.encode(prompt);
  const logits = tf.tidy(() => model.forward(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync() as Float32Array);
  return { ids, logits };
}

/**
 * `question` as a user message in the chat template, encoded as training rendered it: BOS first
 * (the tokenizer's own, unless the template already wrote it).
 */
export function chatPrompt(tok: Tokenizer, question: string): { prompt: string; addSpecialTokens: boolean } {
  if (!tok.hasChatTemplate) return { prompt: question, addSpecialTokens: true };
  const prompt = tok.applyChatTemplate([{ role: 'user', content: question }], { addGenerationPrompt: true });
  return { prompt, addSpecialTokens: !(tok.bosToken && prompt.startsWith(tok.bosToken)) };
}
