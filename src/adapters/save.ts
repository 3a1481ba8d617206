/**
 * Save adapters in PEFT's layout: a directory with `adapter_config.json` (snake_case PEFT
 * fields, see peftConfig.ts) and `adapter_model.safetensors`, both written atomically.
 * The adapter named `default` goes to `dir`, any other adapter to `dir/<name>` (as PEFT's
 * `save_pretrained`). {@link saveAdapterTo} writes the same files to a {@link FileSink}.
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
import { serializeSafetensors, writeSafetensors, type HostTensor } from '../io/safetensors.ts';
import type { FileSink } from '../io/files.ts';
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

/** One adapter's files in PEFT layout: its name, tensors and config text. */
interface AdapterFiles {
  name: string;
  tensors: Map<string, HostTensor>;
  configText: string;
}

/** The files of each adapter to save (shared by {@link savePretrained} and {@link saveAdapterTo}). */
function adapterFiles(peft: PeftModel, opts: SaveAdapterOptions, caller: string): AdapterFiles[] {
  const names = opts.adapterNames ?? [...peft.peftConfig.keys()];
  return names.map((name) => {
    const config = peft.peftConfig.get(name);
    if (!config) throw new UserError(`${caller}: no adapter named "${name}"`);
    const tensors = new Map<string, HostTensor>();
    for (const [key, v] of peft.adapterTensors(name)) {
      tensors.set(key, { dtype: 'F32', shape: [...v.shape], data: v.dataSync() as Float32Array });
    }
    const configText = `${JSON.stringify(toPeftConfig(config), null, 2)}\n`;
    return { name, tensors, configText };
  });
}

const writeOptions = (opts: SaveAdapterOptions) => ({ metadata: { format: 'pt' }, floatDtype: opts.floatDtype ?? 'F32' });

/** Write the adapters of `peft` to `dir` (PEFT layout). */
export function savePretrained(peft: PeftModel, dir: string, opts: SaveAdapterOptions = {}): void {
  for (const a of adapterFiles(peft, opts, 'savePretrained')) {
    const out = adapterDir(dir, a.name);
    fs.mkdirSync(out, { recursive: true });
    writeSafetensors(path.join(out, ADAPTER_WEIGHTS_NAME), a.tensors, writeOptions(opts));
    writeFileAtomicSync(path.join(out, ADAPTER_CONFIG_NAME), a.configText);
  }
}

/**
 * {@link savePretrained} to a {@link FileSink} (a `MemorySink` then hands the files out as
 * `Blob`s): the same bytes, `adapter_config.json` and `adapter_model.safetensors` at the top
 * level for `default`, under `<name>/` for any other adapter.
 */
export async function saveAdapterTo(peft: PeftModel, sink: FileSink, opts: SaveAdapterOptions = {}): Promise<void> {
  for (const a of adapterFiles(peft, opts, 'saveAdapterTo')) {
    const prefix = a.name === 'default' ? '' : `${a.name}/`;
    await sink.write(`${prefix}${ADAPTER_WEIGHTS_NAME}`, serializeSafetensors(a.tensors, writeOptions(opts)));
    await sink.write(`${prefix}${ADAPTER_CONFIG_NAME}`, a.configText);
  }
}
