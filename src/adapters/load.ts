/**
 * Load adapters saved in PEFT's layout (ours, or LoRA/DoRA adapters written by Python PEFT:
 * same key names and shapes). Every key and shape is checked against the model BEFORE the
 * model changes; a missing key, an extra key, a wrong shape or a NaN/Inf value is a
 * {@link UserError} naming the tensor.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tf } from '../backend/tf.ts';
import { readSafetensors } from '../io/safetensors.ts';
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
  const opts: LoadAdapterOptions = typeof nameOrOpts === 'string' ? { adapterName: nameOrOpts } : nameOrOpts;
  const name = opts.adapterName ?? 'default';
  const config = readAdapterConfig(dir);
  const file = path.join(dir, ADAPTER_WEIGHTS_NAME);
  const { tensors } = readSafetensors(file);
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
    const t = tensors.get(key)!;
    tf.tidy(() => v.assign(tf.tensor(t.data as Float32Array, t.shape, 'float32')));
  }
  if (wasEmpty || peft.activeAdapter === name) peft.setAdapter(name);
  return peft;
}
