/**
 * `mergeAdapter(options)`: the library call behind `mor merge`. Folds an adapter into its base
 * model and writes a plain model directory (HF layout: `config.json`, `model.safetensors`, the
 * base model's tokenizer / generation files, and `merge_info.json` saying what was merged),
 * loadable by `loadModel` or transformers without any adapter code: zero added latency.
 *
 * Which adapters merge is their kind's `merge` mode (adapters/registry.ts):
 * - `exact` (LoRA, DoRA) and `inPlace` (full): always (the adapter is a fixed weight delta).
 * - `fixedRouting` (MoR): without routing data when the kind says a config needs none (a
 *   `uniform` router: g = 1/N for every token); otherwise only under a FIXED routing vector per
 *   layer, the mean routing of the real (non-padding) tokens of some data: `routingFrom` files,
 *   optionally only the examples of `task`; with `task` alone, the training data recorded next
 *   to the adapter (`train_config.json` in the adapter directory or its parent, as `mor train`
 *   writes it). The merged model equals the adapter with its router pinned to those vectors.
 * - `never` (MoELoRA): its routing picks different experts per token.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { initBackend } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { loadModel } from '../models/load.ts';
import { saveTensors } from '../models/save.ts';
import { mergedTensorSources } from './mergedSources.ts';
import { loadAdapter, readAdapterConfig } from '../adapters/load.ts';
import { meanRoutingVectors } from '../routing/stats.ts';
import type { PeftModel } from '../adapters/inject.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import type { LlamaForCausalLM } from '../models/llama/model.ts';
import { Tokenizer } from '../tokenizer/tokenizer.ts';
import { batchesOf, padIdOf } from '../data/batch.ts';
import type { DataSource } from '../data/mix.ts';
import { DataFileSchema } from '../train/config.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { checkOutputDir, isSameOrInside, realPath } from '../io/outputPath.ts';
import { readTextFileStrict } from '../io/text.ts';
import { loadExamplesPerTask } from '../data/mix.ts';
import { adapterKind, adapterKinds } from '../adapters/registry.ts';
import { PositionLimit } from '../models/positions.ts';
import { maxOf } from '../util/array.ts';

/** Files of a model directory that are copied unchanged next to the merged weights. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
  'generation_config.json',
] as const;

/** Name of the provenance file written into the merged directory. */
export const MERGE_INFO_NAME = 'merge_info.json';

/** Options of {@link mergeAdapter}. */
export interface MergeAdapterOptions {
  /** Base model directory. */
  model: string;
  /** Adapter directory (`adapter_config.json` + `adapter_model.safetensors`). */
  adapter: string;
  /**
   * Output model directory: new, empty or an earlier merge output; never the base model or
   * adapter folder or inside them (compared by real path). See {@link checkMergeOutput}.
   */
  out: string;
  /** MoR: data whose mean routing (over real tokens) is folded into the weights. */
  routingFrom?: (string | DataSource)[];
  /** MoR: only the examples of this task (of `routingFrom`, or of the recorded training data). */
  task?: string;
  /** Storage dtype of the merged weights. Default F32. */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** MoR: sequences per forward while measuring routing. Default 8. */
  batchSize?: number;
  /** MoR: at most this many examples per task. Default: all. */
  maxExamples?: number;
  /** MoR: longest sequence. Default: the training config's `maxLength`, else the model's max positions. */
  maxLength?: number;
  /** Informational lines (default: none). */
  log?: (line: string) => void;
}

/** What {@link mergeAdapter} returns. */
export interface MergeAdapterResult {
  outDir: string;
  kind: AdapterConfig['kind'];
  /** MoR: the routing vector folded into each module (module path -> `[N]`). */
  routing?: Map<string, Float32Array>;
  /** MoR: where the routing came from (`uniform`, or the data files and task). */
  routingSource?: string;
  /** Files written. */
  files: string[];
}

/** Training data and max length recorded by `mor train` next to an adapter, if any. */
export function recordedTrainingData(adapterDir: string): { file: string; data: DataSource[]; maxLength?: number } | undefined {
  const candidates = [path.join(adapterDir, 'train_config.json'), path.join(path.dirname(path.resolve(adapterDir)), 'train_config.json')];
  for (const file of candidates) {
    if (!fs.existsSync(file)) continue;
    let json: { data?: unknown; maxLength?: unknown };
    try {
      json = JSON.parse(readTextFileStrict(file));
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
    }
    const r = z.array(DataFileSchema).min(1).safeParse(json?.data);
    if (!r.success) throw new UserError(`${file}: "data" is not a list of training files ({path, weight?, task?})`);
    for (const d of r.data) {
      if (!fs.existsSync(d.path)) throw new UserError(`${file}: training data file ${d.path} not found (give --routing-from instead)`);
    }
    const maxLength = typeof json.maxLength === 'number' ? json.maxLength : undefined;
    return { file, data: r.data.map((d) => ({ path: d.path, task: d.task })), maxLength };
  }
  return undefined;
}

/** The routing data of a MoR merge, or the reason it cannot be merged (checked before loading the model). */
function resolveRoutingData(opts: MergeAdapterOptions, config: AdapterConfig): { data: (string | DataSource)[]; maxLength?: number; source: string } | undefined {
  const def = adapterKind(config.kind);
  if (def.merge !== 'fixedRouting') {
    if (opts.routingFrom?.length || opts.task !== undefined) {
      const kinds = adapterKinds().filter((k) => k.merge === 'fixedRouting').map((k) => k.label);
      throw new UserError(`--routing-from / --task apply to ${kinds.join(' and ')} adapters only; ${opts.adapter} holds a ${config.kind} adapter`);
    }
    if (def.merge === 'never') {
      throw new UserError(
        `${opts.adapter}: a ${def.label} adapter routes every token to different experts and cannot be merged into the base weights; ` +
          'use it unmerged (mor eval / mor generate --adapter)',
      );
    }
    return undefined;
  }
  const taskNote = opts.task !== undefined ? `, task "${opts.task}"` : '';
  if (opts.routingFrom?.length) {
    const names = opts.routingFrom.map((f) => (typeof f === 'string' ? f : f.path)).join(', ');
    return { data: opts.routingFrom, source: `mean routing over ${names}${taskNote}` };
  }
  if (opts.task !== undefined) {
    const rec = recordedTrainingData(opts.adapter);
    if (!rec) {
      throw new UserError(
        `--task "${opts.task}" needs data: no train_config.json with the training data next to ${opts.adapter}; give --routing-from DATA.jsonl`,
      );
    }
    const names = rec.data.map((d) => d.path).join(', ');
    return { data: rec.data, maxLength: rec.maxLength, source: `mean routing over the training data (${names})${taskNote}` };
  }
  if (!(def.mergeNeedsRouting?.(config) ?? true)) return undefined;
  throw new UserError(
    `${opts.adapter}: ${def.label} adapter with a learned router mixes its experts differently for every token, ` +
      'so it cannot be merged without a fixed routing vector: give --routing-from DATA.jsonl (mean routing over that data) ' +
      'and/or --task NAME (only that task\'s examples; without --routing-from, of the recorded training data)',
  );
}

/**
 * The merge output must not be (or lie inside) the folder of anything the merge reads, compared
 * by real path (a symlink or `..` reaching the base model folder would otherwise get its
 * `model.safetensors` overwritten); and an existing non-empty `out` must be an earlier merge
 * output (it has `merge_info.json`), so no other model folder is overwritten. Checked before any work.
 */
export function checkMergeOutput(opts: Pick<MergeAdapterOptions, 'out' | 'model' | 'adapter'>): void {
  checkOutputDir(opts.out, '--out');
  const out = realPath(opts.out);
  for (const [what, dir] of [['the base model directory', opts.model], ['the adapter directory', opts.adapter]] as const) {
    const input = realPath(dir);
    if (isSameOrInside(out, input)) {
      const how = out === input ? 'is' : 'lies inside';
      throw new UserError(`--out ${opts.out} ${how} ${what} (${dir}); choose a new directory for the merged model`);
    }
  }
  if (fs.existsSync(out) && fs.readdirSync(out).length > 0 && !fs.existsSync(path.join(out, MERGE_INFO_NAME))) {
    throw new UserError(
      `--out ${opts.out}: the directory is not empty and holds no earlier merge (${MERGE_INFO_NAME}); choose a new or empty directory`,
    );
  }
}

/** Merge the adapter into the model and write the merged directory (see the module comment). */
export async function mergeAdapter(opts: MergeAdapterOptions): Promise<MergeAdapterResult> {
  const log = opts.log ?? (() => {});
  checkMergeOutput(opts);
  if (opts.maxExamples !== undefined && (!Number.isInteger(opts.maxExamples) || opts.maxExamples < 1)) {
    throw new UserError(`maxExamples must be a positive integer, got ${opts.maxExamples}`);
  }
  const config = readAdapterConfig(opts.adapter);
  const routingData = resolveRoutingData(opts, config);
  await initBackend();
  const base = await loadModel(opts.model);
  let peft: PeftModel<LlamaForCausalLM> | undefined;
  try {
    peft = loadAdapter(base, opts.adapter);
    let routing: Map<string, Float32Array> | undefined;
    let routingSource: string | undefined;
    if (routingData) {
      const tokenizer = Tokenizer.fromDir(opts.model);
      const maxLength = opts.maxLength ?? routingData.maxLength ?? base.config.maxPositionEmbeddings;
      const examples = await loadExamplesPerTask(routingData.data, tokenizer, { maxLength, task: opts.task, perTask: opts.maxExamples });
      log(`routing: ${examples.length} examples (${routingData.source})`);
      new PositionLimit(base.config.maxPositionEmbeddings, opts.log ?? ((l) => process.stderr.write(l + '\n'))).check(
        maxOf(examples.map((e) => e.inputIds.length)),
        'a routing example',
        `lower --max-length (now ${maxLength}) to ${base.config.maxPositionEmbeddings}`,
      );
      const batches = batchesOf(examples, opts.batchSize ?? 8, { padId: padIdOf(tokenizer), bucket: true });
      routing = meanRoutingVectors(peft, batches);
      routingSource = routingData.source;
    } else if (adapterKind(config.kind).merge === 'fixedRouting') {
      routingSource = 'uniform router (1/N)';
    }
    const merged = peft; // (a const, so the closure below keeps it narrowed)
    const files = await writeIntoPlace(opts.out, (dir) => writeMergedFiles(merged, dir, opts, config, routing, routingSource, log));
    log(`merged ${config.kind} adapter into ${opts.out}`);
    return { outDir: opts.out, kind: config.kind, routing, routingSource, files };
  } finally {
    (peft ?? base).dispose();
  }
}

/**
 * Let `write` fill a staging folder beside `outDir`, then move its files into `outDir`: a merge
 * that fails half-way (a refused adapter, a full disk) leaves `outDir` as it was. Returns the
 * moved files' paths under `outDir` as given.
 */
async function writeIntoPlace(outDir: string, write: (staging: string) => Promise<string[]>): Promise<string[]> {
  const out = path.resolve(outDir);
  const staging = path.join(path.dirname(out), `.${path.basename(out)}.partial-${process.pid}`);
  fs.rmSync(staging, { recursive: true, force: true });
  try {
    const files = await write(staging);
    fs.mkdirSync(out, { recursive: true });
    // An earlier merge output is replaced whole: its weight files (single or sharded) go first.
    for (const f of fs.readdirSync(out)) if (/^model.*\.safetensors(\.index\.json)?$/.test(f)) fs.rmSync(path.join(out, f));
    return files.map((f) => {
      fs.renameSync(f, path.join(out, path.basename(f)));
      return path.join(outDir, path.basename(f));
    });
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

/** The merged model (layers merged one at a time while written, see mergedSources.ts), tokenizer files and merge_info.json in `out`. */
async function writeMergedFiles(
  peft: PeftModel<LlamaForCausalLM>,
  out: string,
  opts: MergeAdapterOptions,
  config: AdapterConfig,
  routing: Map<string, Float32Array> | undefined,
  routingSource: string | undefined,
  log: (line: string) => void,
): Promise<string[]> {
  const sources = mergedTensorSources(peft, routing);
  let written = 0;
  const progress = sources.map((s) => ({
    ...s,
    read: () => {
      const v = s.read();
      if (++written % 50 === 0 || written === sources.length) log(`merge: ${written}/${sources.length} tensors`);
      return v;
    },
  }));
  const files = await saveTensors(peft.model.config, progress, out, { dtype: opts.dtype ?? 'F32' });
  for (const name of TOKENIZER_FILES) {
    const src = path.join(opts.model, name);
    if (!fs.existsSync(src)) continue;
    await writeFileAtomic(path.join(out, name), fs.readFileSync(src));
    files.push(path.join(out, name));
  }
  const info = {
    base_model: opts.model,
    adapter: opts.adapter,
    adapter_kind: config.kind,
    dtype: opts.dtype ?? 'F32',
    ...(routingSource ? { routing_source: routingSource } : {}),
    ...(opts.task !== undefined ? { task: opts.task } : {}),
    ...(routing ? { routing: Object.fromEntries([...routing].map(([k, v]) => [k, Array.from(v)])) } : {}),
  };
  const infoFile = path.join(out, MERGE_INFO_NAME);
  await writeFileAtomic(infoFile, JSON.stringify(info, null, 2) + '\n');
  files.push(infoFile);
  return files;
}
