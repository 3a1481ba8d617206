/**
 * Load a Hugging Face model directory: `config.json` plus `model.safetensors` or a sharded
 * checkpoint (`model.safetensors.index.json`).
 *
 * Where the weights live: with the native addon (and its BLAS kernel active), the matrices of
 * the linear layers, the embedding and the output head stay in the safetensors files, memory-
 * mapped and in their file dtype, outside the 4 GiB wasm heap (src/backend/weightStore.ts);
 * norms and biases become heap tensors. Without the addon, every weight (F32/F16/BF16) becomes
 * a float32 heap tensor, read one at a time, so peak memory stays near their float32 size.
 * Every weight is checked for NaN/Inf at load. Pages and other non-directory sources use
 * `loadModelFrom` (src/models/loadSource.ts, heap tensors, the same checks and messages).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../backend/tf.ts';
import { UserError } from '../errors.ts';
import { openSafetensors, type SafetensorsFile } from '../io/safetensors.ts';
import { parseHfConfig, type LlamaConfig } from './llama/config.ts';
import type { LlamaForCausalLM } from './llama/model.ts';
import { buildModelSafely } from './registry.ts';
import { MappedFile, StoredWeight, weightStoreAvailable } from '../backend/weightStore.ts';
import { assertFinite, nonFiniteError } from '../io/finite.ts';
import { checkHeapFits, checkWeightInfo, parseWeightMap, rejectUnusedWeights } from './loadSource.ts';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /**
   * Keep the frozen matrices in the native weight store, outside the wasm heap: `auto`
   * (default) when the native addon is active, `on` (an error without it), `off` (heap tensors;
   * also `MOR_WEIGHT_STORE=0`).
   */
  weightStore?: 'auto' | 'on' | 'off';
}

/** Where {@link loadModel} will keep a directory's frozen weights: what a run is sized with before loading. */
export interface WeightPlacement {
  /** Matrices stay in the native store, outside the wasm heap. */
  weightsOffHeap: boolean;
  /** Bytes per value of the checkpoint's float tensors (BF16/F16 2, F32 4). */
  fileDtypeBytes: number;
}

/**
 * The {@link WeightPlacement} of `dir` (reads only the first safetensors header; a directory
 * without weight files is sized as float32, and {@link loadModel} then reports what is missing).
 */
export function weightPlacement(dir: string, opts: LoadModelOptions = {}): WeightPlacement {
  const weightsOffHeap = useWeightStore(opts.weightStore);
  const file = fs.existsSync(path.join(dir, 'model.safetensors')) || fs.existsSync(path.join(dir, 'model.safetensors.index.json'))
    ? [...new Set(weightFiles(dir).values())][0]
    : undefined;
  if (!file) return { weightsOffHeap, fileDtypeBytes: 4 };
  const f = openSafetensors(file);
  try {
    const float = f.tensors.find((t) => t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16');
    return { weightsOffHeap, fileDtypeBytes: float?.dtype === 'F32' ? 4 : 2 };
  } finally {
    f.close();
  }
}

/** {@link checkHeapFits} with what a Node user can do about it. */
function checkHeapFitsNode(dir: string, config: LlamaConfig): void {
  checkHeapFits(dir, config,
    'install OpenBLAS and rebuild the native addon (npm run setup) so the frozen weights stay outside the heap' +
      (process.env.MOR_WEIGHT_STORE === '0' ? ', and unset MOR_WEIGHT_STORE=0' : ''));
}

/** Whether this load keeps matrices in the native store. */
function useWeightStore(mode: LoadModelOptions['weightStore'] = 'auto'): boolean {
  if (mode === 'off') return false;
  const available = weightStoreAvailable();
  if (mode === 'on' && !available) {
    throw new UserError('weightStore "on" needs the native addon with OpenBLAS (see scripts/setup.sh) and MOR_WEIGHT_STORE not 0');
  }
  return available;
}

/** Read and validate `dir/config.json`. */
export function loadConfig(dir: string): LlamaConfig {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`model directory not found: ${dir}`);
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) throw new UserError(`${file} not found (a Hugging Face model directory needs config.json)`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(json, file);
}

/** Map of tensor name -> safetensors file, for a single-file or sharded checkpoint. */
function weightFiles(dir: string): Map<string, string> {
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  const out = new Map<string, string>();
  if (fs.existsSync(single)) {
    out.set('', single);
    return out;
  }
  if (!fs.existsSync(index)) {
    const bin = fs.existsSync(path.join(dir, 'pytorch_model.bin')) ? ' (pytorch_model.bin is not supported: convert it to safetensors)' : '';
    throw new UserError(`${dir}: no model.safetensors or model.safetensors.index.json${bin}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(index, 'utf8'));
  } catch (e) {
    throw new UserError(`${index}: invalid JSON (${(e as Error).message})`);
  }
  for (const [name, shard] of parseWeightMap(json, index)) {
    const p = path.join(dir, shard);
    if (!fs.existsSync(p)) throw new UserError(`${index}: shard ${shard} (for ${name}) not found in ${dir}`);
    out.set(name, p);
  }
  return out;
}

/**
 * Load `dir` as a causal LM. Throws a {@link UserError} for a missing file, an unsupported
 * `model_type`, a missing / mis-shaped / non-float weight, or unexpected extra weights.
 */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<LlamaForCausalLM> {
  await initBackend();
  const config = loadConfig(dir);
  const files = weightFiles(dir);
  const store = useWeightStore(opts.weightStore);
  if (!store) checkHeapFitsNode(dir, config);
  const open = new Map<string, SafetensorsFile>();
  // Each mapping is held by the loader until the end, then only by the weights that view it.
  const mapped = new Map<string, MappedFile>();
  const mappingOf = (p: string): MappedFile => {
    let m = mapped.get(p);
    if (!m) {
      mapped.set(p, (m = new MappedFile(p)));
      m.retain();
    }
    return m;
  };
  const fileOf = (p: string): SafetensorsFile => {
    let f = open.get(p);
    if (!f) open.set(p, (f = openSafetensors(p)));
    return f;
  };
  try {
    // name -> file holding it
    const where = new Map<string, string>();
    const single = files.get('');
    if (single !== undefined) {
      for (const n of fileOf(single).names) where.set(n, single);
    } else {
      for (const [n, p] of files) where.set(n, p);
    }
    const used = new Set<string>();
    const model = buildModelSafely(config, (name, shape, kind) => {
      const p = where.get(name);
      if (!p) throw new UserError(`${dir}: missing weight ${name} (expected shape [${shape}])`);
      const f = fileOf(p);
      const info = checkWeightInfo(p, name, f.info(name), shape);
      used.add(name);
      if (store && (kind === 'linear' || kind === 'embedding')) {
        const w = new StoredWeight(mappingOf(p), f.dataOffset(name), info.dtype, shape as [number, number]);
        const bad = w.countNonFinite();
        if (bad > 0) {
          w.dispose();
          throw nonFiniteError(name, p, bad, w.size);
        }
        return w;
      }
      const data = f.read(name).data as Float32Array;
      assertFinite(name, p, data);
      return tf.tensor(data, shape, 'float32');
    });
    rejectUnusedWeights(dir, model, config, where.keys(), used);
    return model;
  } finally {
    for (const f of open.values()) f.close();
    for (const m of mapped.values()) m.release();
  }
}
