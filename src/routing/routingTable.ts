/**
 * `routingTable(options)`: the library call behind `mor routing`. Loads a base model and a routed
 * adapter (a kind whose registry definition routes), runs it in inference mode over data files
 * (one task per batch) and reports the mean routing weight per expert for every adapted module
 * and task: a Markdown table, the numbers as JSON and a heatmap SVG (the paper's evidence that
 * experts specialise by task).
 *
 * Files written to `outDir` (when given):
 * ```
 * routing.json   { [module]: { [task]: { tokens, mean: number[N] } } }  (as `mor train` writes)
 * routing.svg    heatmap: expert (x) by task (y), one panel per module
 * routing.md     the Markdown table printed by the CLI
 * ```
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { ADAPTER_KINDS } from '../adapters/config.ts';
import { loadModel } from '../models/load.ts';
import { loadAdapter, readAdapterConfig } from '../adapters/load.ts';
import { routingByTask, type RoutingStats } from './stats.ts';
import { adapterKind } from '../adapters/registry.ts';
import type { PeftModel } from '../adapters/inject.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { loadExamplesPerTask, type DataSource } from '../data/mix.ts';
import { padIdOf } from '../data/batch.ts';
import { routingCellsFromStats, routingHeatmapSvg } from './heatmap.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { checkOutputDir } from '../io/outputPath.ts';
import { maxOf } from '../util/array.ts';
import { PositionLimit } from '../models/positions.ts';

/** Options of {@link routingTable}. */
export interface RoutingTableOptions {
  /** Base model directory (HF layout with tokenizer files). */
  model: string;
  /** Adapter directory of a routed adapter. */
  adapter: string;
  /** Data files (JSONL: chat, prompt/completion or text records; `task` field or file name = task). */
  data: (string | DataSource)[];
  /** Where to write routing.json, routing.svg and routing.md. */
  outDir?: string;
  /** At most this many examples per task (in file order). Default 256. */
  maxExamples?: number;
  /** Sequences per forward. Default 8. */
  batchSize?: number;
  /** Longest sequence (longer examples are truncated). Default: the model's max positions. */
  maxLength?: number;
  /** Heatmap title. */
  title?: string;
  /** Warning lines (examples past the model's max positions). Default: stderr. */
  warn?: (line: string) => void;
}

/** One row of the table: a module and a task. */
export interface RoutingRow {
  /** Module path in the base model (`model.layers.0.mlp.up_proj`). */
  module: string;
  task: string;
  /** Real (non-padding) tokens observed. */
  tokens: number;
  /** Mean routing weight per expert `[N]`. */
  mean: number[];
}

/** What {@link routingTable} returns. */
export interface RoutingTableResult {
  /** Adapter kind (a routed one). */
  kind: string;
  /** Number of experts. */
  numExperts: number;
  /** Tasks in the order first seen in the data. */
  tasks: string[];
  rows: RoutingRow[];
  /** `{ [module]: { [task]: { tokens, mean } } }`. */
  json: Record<string, Record<string, { tokens: number; mean: number[] }>>;
  markdown: string;
  /** Heatmap SVG. */
  svg: string;
  /** Files written (when `outDir`). */
  files: string[];
}

/** The examples a routing table reads: {@link loadExamplesPerTask} (this name is the public API's). */
export { loadExamplesPerTask as loadRoutingExamples };

const fmt = (x: number): string => x.toFixed(3);

/** The Markdown table: one row per module and task, one column per expert; the top expert in bold. */
export function formatRoutingMarkdown(rows: RoutingRow[], numExperts: number, title?: string): string {
  const experts = Array.from({ length: numExperts }, (_, i) => `e${i}`);
  const lines: string[] = [];
  if (title) lines.push(`### ${title}`, '');
  lines.push(`| module | task | tokens | ${experts.join(' | ')} |`);
  lines.push(`|---|---|---:|${experts.map(() => '---:').join('|')}|`);
  for (const r of rows) {
    const top = r.mean.indexOf(maxOf(r.mean));
    const cells = r.mean.map((w, i) => (i === top ? `**${fmt(w)}**` : fmt(w)));
    lines.push(`| ${r.module} | ${r.task} | ${r.tokens} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** Rows of the table from routing statistics grouped by task (modules in model order). */
export function routingRows(stats: RoutingStats, tasks: string[]): RoutingRow[] {
  const rows: RoutingRow[] = [];
  for (const module of stats.modulePaths()) {
    for (const task of tasks) {
      const tokens = stats.tokens(module, task);
      if (tokens === 0) continue;
      rows.push({ module, task, tokens, mean: Array.from(stats.mean(module, task)) });
    }
  }
  return rows;
}

/** Run the adapter over the data and report its routing (see the module comment). */
export async function routingTable(opts: RoutingTableOptions): Promise<RoutingTableResult> {
  if (opts.outDir !== undefined) checkOutputDir(opts.outDir, '--out');
  const config = readAdapterConfig(opts.adapter);
  const kind = adapterKind(config.kind);
  if (!kind.routes(config) || !kind.numExperts) {
    const routed = ADAPTER_KINDS.filter((k) => adapterKind(k).numExperts).map((k) => adapterKind(k).label);
    throw new UserError(`${opts.adapter}: a ${config.kind} adapter has no router; routing tables need a ${routed.join(' or ')} adapter`);
  }
  const numExperts = kind.numExperts(config);
  if (opts.maxExamples !== undefined && (!Number.isInteger(opts.maxExamples) || opts.maxExamples < 1)) {
    throw new UserError(`maxExamples must be a positive integer, got ${opts.maxExamples}`);
  }
  await initBackend();
  const tokenizer = Tokenizer.fromDir(opts.model);
  const base = await loadModel(opts.model);
  let peft: PeftModel<LlamaForCausalLM> | undefined;
  try {
    const maxLength = opts.maxLength ?? base.config.maxPositionEmbeddings;
    const examples = await loadExamplesPerTask(opts.data, tokenizer, { maxLength, perTask: opts.maxExamples ?? 256 });
    new PositionLimit(base.config.maxPositionEmbeddings, opts.warn ?? ((l) => process.stderr.write(l + '\n')))
      .check(maxOf(examples.map((e) => e.inputIds.length)), 'a routing example', `lower --max-length to ${base.config.maxPositionEmbeddings}`);
    peft = loadAdapter(base, opts.adapter);
    const stats = routingByTask(peft.model, examples, opts.batchSize ?? 8, padIdOf(tokenizer), opts.maxExamples ?? 256);
    const tasks = [...new Set(examples.map((e) => e.task))];
    const rows = routingRows(stats, tasks);
    const title = opts.title ?? `${kind.label}: mean routing weight per expert, by task`;
    const markdown = formatRoutingMarkdown(rows, numExperts, title);
    const json = stats.toJSON();
    const svg = await routingHeatmapSvg(routingCellsFromStats(stats), { title });
    const files: string[] = [];
    if (opts.outDir) {
      fs.mkdirSync(opts.outDir, { recursive: true });
      const write = async (name: string, text: string): Promise<void> => {
        const f = path.join(opts.outDir!, name);
        await writeFileAtomic(f, text);
        files.push(f);
      };
      await write('routing.json', JSON.stringify(json, null, 1) + '\n');
      await write('routing.svg', svg);
      await write('routing.md', markdown);
    }
    return { kind: config.kind, numExperts, tasks, rows, json, markdown, svg, files };
  } finally {
    (peft ?? base).dispose();
  }
}
