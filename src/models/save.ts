/**
 * Save a model in the Hugging Face layout: `config.json` and `model.safetensors` with HF key
 * names (a tied embedding is written once, as `model.embed_tokens.weight`, like transformers).
 * Files are written atomically.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { writeSafetensors, type HostTensor } from '../io/safetensors.ts';
import { toHfConfig } from './llama/config.ts';
import type { LlamaForCausalLM } from './llama/model.ts';

/** Options of {@link savePretrained}. */
export interface SaveOptions {
  /** Float dtype of the stored weights (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
}

const TORCH_DTYPE = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' } as const;

/** Write `model` to `dir` (created if needed) as `config.json` + `model.safetensors`. */
export async function savePretrained(model: LlamaForCausalLM, dir: string, opts: SaveOptions = {}): Promise<void> {
  const dtype = opts.dtype ?? 'F32';
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, HostTensor>();
  for (const [name, p] of model.namedParameters()) {
    tensors.set(name, { dtype: 'F32', shape: p.shape.slice(), data: p.dataSync() as Float32Array });
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' }, floatDtype: dtype });
  const config = { ...toHfConfig(model.config), torch_dtype: TORCH_DTYPE[dtype] };
  await writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
}
