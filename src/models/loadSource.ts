/**
 * Load a Hugging Face model through a {@link FileSource} (URLs, browser `File`s, bytes in
 * memory, or a directory via `dirSource`): `config.json` plus `model.safetensors` or a sharded
 * checkpoint (`model.safetensors.index.json`). Every weight becomes a float32 heap tensor (no
 * native weight store: the bytes are already in memory). Each safetensors file is read whole,
 * once, and kept until the model is built.
 *
 * The checks shared with the directory loader (src/models/load.ts) live here too, so both give
 * the same one-line {@link UserError}s: shape and dtype of each weight, weights the model does
 * not use, NaN/Inf values, a model too big for the wasm heap.
 */
import { initBackend, tf } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { describeFile, readJson, readRequired, type FileSource } from '../io/files.ts';
import { assertFinite } from '../io/finite.ts';
import { openSafetensorsBytes, type SafetensorsFile, type TensorInfo } from '../io/safetensors.ts';
import { llamaParameterCount } from '../experiment/budget.ts';
import { parseHfConfig, type LlamaConfig } from './llama/config.ts';
import type { LlamaForCausalLM } from './llama/model.ts';
import { WASM_HEAP_MAX_BYTES, WASM_HEAP_USABLE_FRACTION } from './memoryPlan.ts';
import { buildModelSafely } from './registry.ts';

export const CONFIG_NAME = 'config.json';
export const WEIGHTS_NAME = 'model.safetensors';
export const WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';

/** Checkpoint keys that carry no weights we need (old LLaMA checkpoints store rope buffers). */
const IGNORED_KEY = /\.rotary_emb\.inv_freq$/;

/**
 * Refuse, before reading any weight, a model whose float32 weights cannot fit the wasm heap:
 * tfjs-wasm would otherwise die half-way with "memory access out of bounds". `advice` ends the
 * message (what the caller can do about it).
 */
export function checkHeapFits(label: string, config: LlamaConfig, advice = ''): void {
  const bytes = 4 * llamaParameterCount(config);
  const limit = WASM_HEAP_MAX_BYTES * WASM_HEAP_USABLE_FRACTION;
  if (bytes > limit) {
    throw new UserError(
      `${label}: the model's ${(bytes / 2 ** 30).toFixed(1)} GiB of float32 weights do not fit the ${(limit / 2 ** 30).toFixed(1)} GiB wasm heap${advice ? `; ${advice}` : ''}`,
    );
  }
}

/** The `weight_map` of a parsed `model.safetensors.index.json` (`file` names it): tensor name -> shard name. */
export function parseWeightMap(json: unknown, file: string): Map<string, string> {
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null) throw new UserError(`${file}: missing "weight_map"`);
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string') throw new UserError(`${file}: weight_map["${name}"] must be a file name`);
    out.set(name, shard);
  }
  return out;
}

/** Check a weight's header entry (from `file`) against the shape the config asks for; F32/F16/BF16 only. */
export function checkWeightInfo(
  file: string,
  name: string,
  info: TensorInfo | undefined,
  shape: readonly number[],
): TensorInfo & { dtype: 'F32' | 'F16' | 'BF16' } {
  if (!info) throw new UserError(`${file}: missing weight ${name} (listed in the index; expected shape [${shape}])`);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new UserError(`${file}: weight ${name} has shape [${info.shape}], expected [${shape}] from config.json`);
  }
  if (info.dtype !== 'F32' && info.dtype !== 'F16' && info.dtype !== 'BF16') {
    throw new UserError(`${file}: weight ${name} has dtype ${info.dtype}; expected F32, F16 or BF16`);
  }
  return info as TensorInfo & { dtype: 'F32' | 'F16' | 'BF16' };
}

/**
 * Throw (after disposing `model`) when the checkpoint holds weights the model did not use;
 * rope buffers and a tied model's `lm_head.weight` are allowed.
 */
export function rejectUnusedWeights(label: string, model: LlamaForCausalLM, config: LlamaConfig, names: Iterable<string>, used: ReadonlySet<string>): void {
  const extra = [...names].filter(
    (n) => !used.has(n) && !IGNORED_KEY.test(n) && !(config.tieWordEmbeddings && n === 'lm_head.weight'),
  );
  if (extra.length === 0) return;
  model.dispose();
  const shown = extra.slice(0, 5).join(', ') + (extra.length > 5 ? `, ... (${extra.length} in all)` : '');
  throw new UserError(`${label}: unexpected weights not used by ${config.modelType} model: ${shown}`);
}

/** Read and validate `config.json` from `src`. */
export async function loadConfigFrom(src: FileSource): Promise<LlamaConfig> {
  const json = await readJson(src, CONFIG_NAME);
  if (json === undefined) throw new UserError(`${describeFile(src, CONFIG_NAME)} not found (a Hugging Face model needs config.json)`);
  return parseHfConfig(json, describeFile(src, CONFIG_NAME));
}

/** The single weights file's bytes, or the index's tensor name -> shard name map. */
async function weightFilesFrom(src: FileSource): Promise<Uint8Array | Map<string, string>> {
  const single = await src.read(WEIGHTS_NAME);
  if (single !== undefined) return single;
  const index = await readJson(src, WEIGHTS_INDEX_NAME);
  if (index === undefined) throw new UserError(`${src.label}: no ${WEIGHTS_NAME} or ${WEIGHTS_INDEX_NAME}`);
  return parseWeightMap(index, describeFile(src, WEIGHTS_INDEX_NAME));
}

/**
 * Load the model in `src` as a causal LM with float32 heap tensors. Throws a {@link UserError}
 * naming the file for a missing file, bad JSON, an unsupported `model_type`, a missing /
 * mis-shaped / non-float / non-finite weight, or unexpected extra weights.
 */
export async function loadModelFrom(src: FileSource): Promise<LlamaForCausalLM> {
  await initBackend();
  const config = await loadConfigFrom(src);
  const files = await weightFilesFrom(src);
  checkHeapFits(src.label, config);
  // Each safetensors file read once, in the order weights need them.
  const open = new Map<string, SafetensorsFile>();
  // name -> file holding it
  const where = new Map<string, string>();
  if (files instanceof Uint8Array) {
    const f = openSafetensorsBytes(files, describeFile(src, WEIGHTS_NAME));
    open.set(WEIGHTS_NAME, f);
    for (const n of f.names) where.set(n, WEIGHTS_NAME);
  } else {
    for (const [n, shard] of files) where.set(n, shard);
  }
  // Open every shard before building: the builder's callback is synchronous.
  for (const [n, shard] of where) {
    if (open.has(shard)) continue;
    const bytes = await readRequired(src, shard, `a shard listed in ${WEIGHTS_INDEX_NAME} for ${n}`);
    open.set(shard, openSafetensorsBytes(bytes, describeFile(src, shard)));
  }
  const used = new Set<string>();
  const model = buildModelSafely(config, (name, shape) => {
    const shard = where.get(name);
    const f = shard === undefined ? undefined : open.get(shard); // every listed shard was opened above
    if (!f) throw new UserError(`${src.label}: missing weight ${name} (expected shape [${shape}])`);
    checkWeightInfo(f.path, name, f.info(name), shape);
    used.add(name);
    const data = f.read(name).data as Float32Array;
    assertFinite(name, f.path, data);
    return tf.tensor(data, shape, 'float32');
  });
  rejectUnusedWeights(src.label, model, config, where.keys(), used);
  return model;
}
