/**
 * Save a model in the Hugging Face layout: `config.json` and `model.safetensors` with HF key
 * names (a tied embedding is written once, as `model.embed_tokens.weight`, like transformers),
 * or, past `maxShardBytes`, shards `model-0000i-of-0000n.safetensors` with
 * `model.safetensors.index.json`, as transformers' `save_pretrained` does.
 *
 * Each tensor's values are produced only when the writer reaches it ({@link TensorSource}), so
 * a big model (frozen weights in the native store, merged layers computed one at a time) is
 * written without a float32 copy of the whole model. Files are written atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { writeSafetensors, type LazyF32Tensor } from '../io/safetensors.ts';
import { toHfConfig, type LlamaConfig } from './llama/config.ts';
import type { LlamaForCausalLM } from './llama/model.ts';
import type { Module } from '../nn/module.ts';

/** Options of {@link savePretrained}. */
export interface SaveOptions {
  /** Float dtype of the stored weights (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Largest shard in bytes before the checkpoint is split (default 5 GB, as transformers). */
  maxShardBytes?: number;
}

/** One tensor to write: HF key, shape, and its float32 values on demand. */
export interface TensorSource {
  name: string;
  shape: number[];
  read: () => Float32Array;
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;
const BYTES = { F32: 4, F16: 2, BF16: 2 } as const;
const DEFAULT_SHARD_BYTES = 5e9;

/** Every parameter of `model`, read from wherever it lives when written. */
export function parameterSources(model: Module): TensorSource[] {
  return model.namedParameters().map(([name, p]) => ({ name, shape: [...p.shape], read: () => p.dataSync() as Float32Array }));
}

/** Write `model` to `dir` (created if needed): `config.json` plus one or more safetensors files. */
export async function savePretrained(model: LlamaForCausalLM, dir: string, opts: SaveOptions = {}): Promise<string[]> {
  return saveTensors(model.config, parameterSources(model), dir, opts);
}

/**
 * Write `config` and the tensors of `sources` to `dir` in the HF layout; returns the files
 * written (config first). Tensors go into shards in the given order.
 */
export async function saveTensors(config: LlamaConfig, sources: TensorSource[], dir: string, opts: SaveOptions = {}): Promise<string[]> {
  const dtype = opts.dtype ?? 'F32';
  const maxShard = opts.maxShardBytes ?? DEFAULT_SHARD_BYTES;
  fs.mkdirSync(dir, { recursive: true });
  const shards: TensorSource[][] = [[]];
  let size = 0;
  let total = 0;
  for (const s of sources) {
    const bytes = BYTES[dtype] * s.shape.reduce((a, b) => a * b, 1);
    if (size > 0 && size + bytes > maxShard) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(s);
    size += bytes;
    total += bytes;
  }
  const files: string[] = [];
  const configFile = path.join(dir, 'config.json');
  await writeFileAtomic(configFile, JSON.stringify({ ...toHfConfig(config), torch_dtype: TORCH_DTYPE[dtype] }, null, 2) + '\n');
  files.push(configFile);
  const n = shards.length;
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const name = n === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const tensors = new Map<string, LazyF32Tensor>(shards[i].map((s) => [s.name, { dtype: 'F32', shape: s.shape, read: s.read }]));
    writeSafetensors(path.join(dir, name), tensors, { metadata: { format: 'pt' }, floatDtype: dtype });
    for (const s of shards[i]) weightMap[s.name] = name;
    files.push(path.join(dir, name));
  }
  if (n > 1) {
    const index = path.join(dir, 'model.safetensors.index.json');
    await writeFileAtomic(index, JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n');
    files.push(index);
  }
  return files;
}
