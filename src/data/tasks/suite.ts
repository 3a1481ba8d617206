/**
 * Build the bundled multi-task suite: generate every task's splits from one seed and write
 * them as JSONL, plus a shuffled training mixture and a manifest with each file's sha256.
 *
 * Layout under `outDir`:
 * ```
 * <task>/train.jsonl            chat   {"task","messages":[{"role":"user",...},{"role":"assistant",...}]}
 * <task>/validation.jsonl       chat   (for a validation loss)
 * <task>/validation.mc.jsonl    multiple choice {"task","question","choices","answer"}
 * <task>/test.mc.jsonl          multiple choice
 * <task>/validation.prompt.jsonl  {"task","prompt","completion"} (exact match)
 * <task>/test.prompt.jsonl        {"task","prompt","completion"}
 * train.mix.jsonl               all tasks' train rows, shuffled
 * validation.mc.jsonl, test.mc.jsonl, validation.prompt.jsonl, test.prompt.jsonl   all tasks
 * manifest.json
 * ```
 * Output is byte-identical for the same seed and sizes: all randomness comes from
 * {@link namedRng}, object keys are written in a fixed order, lines end with `\n`.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SUITE_TASKS } from './registry.ts';
import { byString, namedRng } from './split.ts';
import type { SplitSizes, TaskCategory, TaskItem, TaskSpec, TaskSplits } from './types.ts';
import { pushAll } from '../../util/array.ts';

/** Default seed of `npm run data:build`. */
export const DEFAULT_SUITE_SEED = 1234;

/** Options for generating the suite. */
export interface SuiteOptions {
  seed: number;
  /** Upper bounds applied to every task's default sizes (e.g. small sizes for tests). */
  maxSizes?: Partial<SplitSizes>;
  /** Only these tasks (by name); all by default. */
  tasks?: string[];
}

/** One task's generated splits with its spec. */
export interface GeneratedTask {
  spec: TaskSpec;
  splits: TaskSplits;
}

/** Sizes a task is generated with under `maxSizes`. */
export function effectiveSizes(spec: TaskSpec, maxSizes?: Partial<SplitSizes>): SplitSizes {
  const d = spec.defaultSizes;
  return {
    train: Math.min(d.train, maxSizes?.train ?? Infinity),
    validation: Math.min(d.validation, maxSizes?.validation ?? Infinity),
    test: Math.min(d.test, maxSizes?.test ?? Infinity),
  };
}

/** Generate all (or the selected) tasks in memory. Throws on an unknown task name. */
export function generateSuite(opts: SuiteOptions): GeneratedTask[] {
  const wanted = opts.tasks;
  if (wanted) {
    for (const n of wanted) if (!SUITE_TASKS.some((t) => t.name === n)) throw new Error(`unknown task '${n}'`);
  }
  return SUITE_TASKS.filter((t) => !wanted || wanted.includes(t.name)).map((spec) => ({
    spec,
    splits: spec.generate({ rng: namedRng(opts.seed, `task:${spec.name}`), sizes: effectiveSizes(spec, opts.maxSizes) }),
  }));
}

/** A chat training row. */
export function chatRow(task: string, item: TaskItem): string {
  return JSON.stringify({
    task,
    messages: [
      { role: 'user', content: item.question },
      { role: 'assistant', content: item.answer },
    ],
  });
}

/** A multiple-choice row. */
export function mcRow(task: string, item: TaskItem): string {
  return JSON.stringify({ task, question: item.question, choices: item.choices, answer: item.answerIndex });
}

/** A prompt/completion row (for exact-match evaluation). */
export function promptRow(task: string, item: TaskItem): string {
  return JSON.stringify({ task, prompt: item.question, completion: item.answer });
}

function jsonl(rows: string[]): string {
  return rows.length === 0 ? '' : `${rows.join('\n')}\n`;
}

/** Manifest entry of one written file. */
export interface FileInfo {
  sha256: string;
  bytes: number;
  lines: number;
}

/** The suite's manifest.json. */
export interface SuiteManifest {
  name: string;
  version: number;
  seed: number;
  generator: string;
  tasks: {
    name: string;
    category: TaskCategory;
    source: string;
    description: string;
    numChoices: number;
    chance: number;
    counts: SplitSizes;
    example: { question: string; choices: string[]; answer: number };
  }[];
  files: Record<string, FileInfo>;
}

/** Write `text` and record its hash under its path relative to `root`. */
function writeTracked(root: string, rel: string, text: string, files: Map<string, FileInfo>): void {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  const bytes = Buffer.byteLength(text);
  files.set(rel.split(path.sep).join('/'), {
    sha256: createHash('sha256').update(text).digest('hex'),
    bytes,
    lines: text.length === 0 ? 0 : text.split('\n').length - 1,
  });
}

/** Write generated tasks under `outDir`; returns the manifest (also written as manifest.json). */
export function writeSuite(outDir: string, tasks: GeneratedTask[], seed: number): SuiteManifest {
  const files = new Map<string, FileInfo>();
  const mix: string[] = [];
  const all = { 'validation.mc': [] as string[], 'test.mc': [] as string[], 'validation.prompt': [] as string[], 'test.prompt': [] as string[] };
  for (const { spec, splits } of tasks) {
    const t = spec.name;
    const train = splits.train.map((i) => chatRow(t, i));
    pushAll(mix, train);
    writeTracked(outDir, path.join(t, 'train.jsonl'), jsonl(train), files);
    writeTracked(outDir, path.join(t, 'validation.jsonl'), jsonl(splits.validation.map((i) => chatRow(t, i))), files);
    for (const split of ['validation', 'test'] as const) {
      const mc = splits[split].map((i) => mcRow(t, i));
      const pr = splits[split].map((i) => promptRow(t, i));
      pushAll(all[`${split}.mc`], mc);
      pushAll(all[`${split}.prompt`], pr);
      writeTracked(outDir, path.join(t, `${split}.mc.jsonl`), jsonl(mc), files);
      writeTracked(outDir, path.join(t, `${split}.prompt.jsonl`), jsonl(pr), files);
    }
  }
  writeTracked(outDir, 'train.mix.jsonl', jsonl(namedRng(seed, 'mix').shuffle(mix)), files);
  for (const [name, rows] of Object.entries(all)) writeTracked(outDir, `${name}.jsonl`, jsonl(rows), files);

  const manifest: SuiteManifest = {
    name: 'mor-suite',
    version: 1,
    seed,
    generator: 'npm run data:build -- --seed <seed> --out <dir>',
    tasks: tasks.map(({ spec, splits }) => {
      const ex = splits.test[0] ?? splits.validation[0] ?? splits.train[0];
      return {
        name: spec.name,
        category: spec.category,
        source: spec.source,
        description: spec.description,
        numChoices: spec.numChoices,
        chance: 1 / spec.numChoices,
        counts: { train: splits.train.length, validation: splits.validation.length, test: splits.test.length },
        example: { question: ex?.question ?? '', choices: ex?.choices ?? [], answer: ex?.answerIndex ?? 0 },
      };
    }),
    files: Object.fromEntries([...files.entries()].sort((a, b) => byString(a[0], b[0]))),
  };
  writeFileSync(path.join(outDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Generate and write the suite. */
export function buildSuite(outDir: string, opts: SuiteOptions): { tasks: GeneratedTask[]; manifest: SuiteManifest } {
  const tasks = generateSuite(opts);
  const manifest = writeSuite(outDir, tasks, opts.seed);
  return { tasks, manifest };
}
