/**
 * Load adapters saved in PEFT's layout (ours, or LoRA/DoRA adapters written by Python PEFT:
 * same key names and shapes). Every key and shape is checked against the model BEFORE the
 * model changes; a missing key, an extra key, a wrong shape or a NaN/Inf value is a
 * {@link UserError} naming the tensor. {@link loadAdapter} reads a directory,
 * {@link loadAdapterFrom} a {@link FileSource}; both share the checks and the attaching.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../backend/tf.ts';
import { parseSafetensors, readSafetensors, type HostTensor } from '../io/safetensors.ts';
import { describeFile, readJson, readRequired, type FileSource } from '../io/files.ts';
import { assertFinite } from '../io/finite.ts';
import { decodeUtf8Strict } from '../io/text.ts';
import { Module } from '../nn/module.ts';
import { UserError } from '../errors.ts';
import { PeftModel } from './inject.ts';
import { fromPeftConfig } from './peftConfig.ts';
import { modulesToSavePaths, planAdapter } from './targets.ts';
import { ADAPTER_CONFIG_NAME, ADAPTER_WEIGHTS_NAME } from './save.ts';
import type { AdapterConfig } from './config.ts';
import { modelParameters } from './layer.ts';
import { biasMode } from './schema.ts';

/** Options of {@link loadAdapter}. */
export interface LoadAdapterOptions {
  /** Name of the loaded adapter (default `"default"`). */
  adapterName?: string;
  /** Make it trainable when active (PEFT `is_trainable`); default false (inference). */
  isTrainable?: boolean;
}

/** Read and validate `dir/adapter_config.json`. */
export function readAdapterConfig(dir: string): AdapterConfig {
  const file = path.join(dir, ADAPTER_CONFIG_NAME);
  let text: string;
  try {
    text = decodeUtf8Strict(fs.readFileSync(file), file);
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`${file}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  return fromPeftConfig(json, file);
}

/**
 * Expected tensors of adapter `config` on `model`: full PEFT key -> shape. Throws a UserError
 * when the config does not fit the model (targets matching nothing, ...).
 */
export function expectedAdapterTensors(model: Module, config: AdapterConfig): Map<string, number[]> {
  const out = new Map<string, number[]>();
  const plan = planAdapter(model, config);
  const planned = new Set(plan.map((t) => t.path));
  const bias = biasMode(config);
  for (const t of plan) {
    for (const [k, shape] of t.shapes) out.set(`base_model.model.${t.path}.${k}`, shape);
    if (bias === 'lora_only' && t.hasBias) out.set(`base_model.model.${t.path}.base_layer.bias`, [t.outFeatures]);
  }
  if (bias === 'all') {
    for (const [k, p] of modelParameters(model)) {
      if (!k.endsWith('bias')) continue;
      const owner = k.slice(0, k.lastIndexOf('.'));
      out.set(`base_model.model.${planned.has(owner) ? `${owner}.base_layer.bias` : k}`, [...p.shape]);
    }
  }
  for (const p of config.modulesToSave ? modulesToSavePaths(model, config.modulesToSave) : []) {
    for (const [k, t] of model.getModule(p).namedParameters(p)) out.set(`base_model.model.${k}`, [...t.shape]);
  }
  return out;
}

/**
 * Load the adapter in `dir` into `model` (a base model, which gets wrapped, or a PeftModel,
 * which gets one more adapter) under the name `nameOrOpts` (or `opts.adapterName`, default
 * `"default"`). Returns the PeftModel; the loaded adapter is activated when it is the model's
 * first. It is frozen unless `isTrainable` (PEFT's `from_pretrained` default).
 */
export function loadAdapter<M extends Module>(
  model: M | PeftModel<M>,
  dir: string,
  nameOrOpts: string | LoadAdapterOptions = {},
): PeftModel<M> {
  const config = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_NAME);
  return attachAdapter(model, config, readSafetensors(file).tensors, file, nameOrOpts);
}

/**
 * {@link loadAdapter} through a {@link FileSource} (URLs, browser `File`s, memory, a
 * `MemorySink`'s `asSource()`): `adapter_config.json` and `adapter_model.safetensors` at the
 * source's top level, the same checks, errors naming `<source label>/<file>`.
 */
export async function loadAdapterFrom<M extends Module>(
  model: M | PeftModel<M>,
  src: FileSource,
  nameOrOpts: string | LoadAdapterOptions = {},
): Promise<PeftModel<M>> {
  const config = await readAdapterConfigFrom(src);
  const file = describeFile(src, ADAPTER_WEIGHTS_NAME);
  const bytes = await readRequired(src, ADAPTER_WEIGHTS_NAME, 'an adapter in PEFT layout needs it');
  return attachAdapter(model, config, parseSafetensors(bytes, file).tensors, file, nameOrOpts);
}

/** Read and validate `adapter_config.json` from `src`. */
export async function readAdapterConfigFrom(src: FileSource): Promise<AdapterConfig> {
  const file = describeFile(src, ADAPTER_CONFIG_NAME);
  const json = await readJson(src, ADAPTER_CONFIG_NAME);
  if (json === undefined) throw new UserError(`${file} not found (an adapter in PEFT layout needs it)`);
  return fromPeftConfig(json, file);
}

/**
 * The part of loading shared by {@link loadAdapter} and {@link loadAdapterFrom}: check the
 * tensors read from `file` against `config` on the model (nothing changes on failure), then
 * add and fill the adapter.
 */
function attachAdapter<M extends Module>(
  model: M | PeftModel<M>,
  config: AdapterConfig,
  tensors: ReadonlyMap<string, HostTensor>,
  file: string,
  nameOrOpts: string | LoadAdapterOptions,
): PeftModel<M> {
  const opts: LoadAdapterOptions = typeof nameOrOpts === 'string' ? { adapterName: nameOrOpts } : nameOrOpts;
  const name = opts.adapterName ?? 'default';
  const base = model instanceof PeftModel ? model.model : model;
  const expected = expectedAdapterTensors(base, config);
  for (const [key, shape] of expected) {
    const t = tensors.get(key);
    if (!t) throw new UserError(`${file}: missing tensor "${key}" (expected shape [${shape}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(`${file}: tensor "${key}" has shape [${t.shape}], the model needs [${shape}]`);
    }
    if (t.dtype !== 'F32') throw new UserError(`${file}: tensor "${key}" has dtype ${t.dtype}, expected a float type`);
    // NaN/Inf would turn every output of the adapted layers into NaN (and a merge into a model of NaNs).
    assertFinite(key, file, t.data as Float32Array);
  }
  for (const key of tensors.keys()) {
    if (!expected.has(key)) throw new UserError(`${file}: unexpected tensor "${key}" (not part of this ${config.kind} adapter on this model)`);
  }
  const peft = model instanceof PeftModel ? model : new PeftModel(model);
  const wasEmpty = peft.peftConfig.size === 0;
  peft.addAdapter(name, config, { inferenceMode: !opts.isTrainable });
  for (const [key, v] of peft.adapterTensors(name)) {
    const t = tensors.get(key);
    // The keys were checked against expectedAdapterTensors above: a miss here is a bug.
    if (!t) throw new Error(`${file}: adapter tensor "${key}" was checked but is missing`);
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, t.shape, 'float32')));
  }
  if (wasEmpty || peft.activeAdapter === name) peft.setAdapter(name);
  return peft;
}
