/**
 * Save adapters in PEFT's layout: a directory with `adapter_config.json` (snake_case PEFT
 * fields, see peftConfig.ts) and `adapter_model.safetensors`, both written atomically.
 * The adapter named `default` goes to `dir`, any other adapter to `dir/<name>` (as PEFT's
 * `save_pretrained`).
 *
 * ## Tensor keys
 * `base_model.model.<module path>.<suffix>`, adapter name omitted as in PEFT. The suffixes
 * and shapes of a kind are its definition's `tensorShapes` (in its own module; the README's
 * "Adapters and their files" lists them all); `modulesToSave` and `bias` copies are saved under
 * the parameter's own path (`lm_head.weight`). Example:
 * `base_model.model.model.layers.0.mlp.up_proj.lora_A.weight`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors, type HostTensor } from '../io/safetensors.ts';
import { writeFileAtomicSync } from '../io/atomic.ts';
import { UserError } from '../errors.ts';
import type { PeftModel } from './inject.ts';
import { toPeftConfig } from './peftConfig.ts';

export const ADAPTER_CONFIG_NAME = 'adapter_config.json';
export const ADAPTER_WEIGHTS_NAME = 'adapter_model.safetensors';

/** Options of {@link savePretrained}. */
export interface SaveAdapterOptions {
  /** Adapters to save (default: all). */
  adapterNames?: string[];
  /** Storage dtype of the tensors (default F32, bit-exact). */
  floatDtype?: 'F32' | 'F16' | 'BF16';
}

/** Directory of adapter `name` under `dir`. */
export function adapterDir(dir: string, name: string): string {
  return name === 'default' ? dir : path.join(dir, name);
}

/** Write the adapters of `peft` to `dir` (PEFT layout). */
export function savePretrained(peft: PeftModel, dir: string, opts: SaveAdapterOptions = {}): void {
  const names = opts.adapterNames ?? [...peft.peftConfig.keys()];
  for (const name of names) {
    const config = peft.peftConfig.get(name);
    if (!config) throw new UserError(`savePretrained: no adapter named "${name}"`);
    const out = adapterDir(dir, name);
    fs.mkdirSync(out, { recursive: true });
    const tensors = new Map<string, HostTensor>();
    for (const [key, v] of peft.adapterTensors(name)) {
      tensors.set(key, { dtype: 'F32', shape: [...v.shape], data: v.dataSync() as Float32Array });
    }
    writeSafetensors(path.join(out, ADAPTER_WEIGHTS_NAME), tensors, {
      metadata: { format: 'pt' },
      floatDtype: opts.floatDtype ?? 'F32',
    });
    writeFileAtomicSync(path.join(out, ADAPTER_CONFIG_NAME), `${JSON.stringify(toPeftConfig(config), null, 2)}\n`);
  }
}
