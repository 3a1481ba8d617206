/**
 * The PEFT `adapter_config.json` boundary: camelCase {@link AdapterConfig} <-> PEFT's
 * snake_case fields. LoRA and DoRA are written exactly as PEFT writes a `LoraConfig`
 * (`peft_type: "LORA"`, DoRA as `use_dora: true`), so Python PEFT can load them; MoR, MoELoRA
 * and full fine-tuning use `peft_type` `"MOR"`, `"MOELORA"`, `"FULL"` with the extra fields
 * listed in {@link PEFT_EXTRA_FIELDS}.
 *
 * Reading is strict about meaning, lenient about bookkeeping: every field we understand is
 * validated; other PEFT fields are accepted when they are informational (`task_type`,
 * `peft_version`, ...) or hold an "off" value (null, false, {}, []); anything else (for
 * example `fan_in_fan_out: true` or `init_lora_weights: "pissa"`) is a {@link UserError}
 * naming the field.
 */
import { UserError } from '../errors.ts';
import { parseAdapterConfig, type AdapterConfig } from './config.ts';

/** Extra adapter_config.json fields of the non-PEFT kinds (documentation). */
export const PEFT_EXTRA_FIELDS = {
  MOR: ['num_experts', 'router_mode', 'router_init_std', 'router_bias', 'omega_init', 'omega_noise_std', 'load_balance_coef'],
  MOELORA: ['num_experts', 'top_k', 'load_balance', 'load_balance_coef', 'router_init_std', 'router_bias'],
  FULL: ['train_bias'],
} as const;

/** PEFT fields that carry no meaning for loading here; accepted with any value. */
const INFORMATIONAL = new Set([
  'task_type', 'inference_mode', 'revision', 'auto_mapping', 'peft_version', 'megatron_core',
  'qalora_group_size', 'runtime_config', 'ensure_weight_tying', 'seed',
]);

type Json = Record<string, unknown>;

/** adapter_config.json content (snake_case, PEFT field names) for `config`. */
export function toPeftConfig(config: AdapterConfig): Json {
  const common: Json = {
    base_model_name_or_path: config.baseModelNameOrPath ?? null,
    exclude_modules: config.excludeModules ?? null,
    inference_mode: true,
    layers_pattern: config.layersPattern ?? null,
    layers_to_transform: config.layersToTransform ?? null,
    modules_to_save: config.modulesToSave ?? null,
    revision: null,
    target_modules: config.targetModules ?? null,
    task_type: 'CAUSAL_LM',
  };
  if (config.kind === 'full') {
    return sortKeys({ ...common, peft_type: 'FULL', train_bias: config.trainBias, seed: config.seed });
  }
  const lowRank: Json = {
    ...common,
    alpha_pattern: config.alphaPattern,
    bias: config.bias,
    init_lora_weights: config.init === 'default' ? true : config.init,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    r: config.r,
    rank_pattern: config.rankPattern,
    use_rslora: config.useRslora,
  };
  switch (config.kind) {
    case 'lora':
      return sortKeys({ ...lowRank, peft_type: 'LORA', use_dora: false, lora_bias: config.loraBias, fan_in_fan_out: false });
    case 'dora':
      return sortKeys({ ...lowRank, peft_type: 'LORA', use_dora: true, lora_bias: false, fan_in_fan_out: false });
    case 'mor':
      return sortKeys({
        ...lowRank,
        peft_type: 'MOR',
        num_experts: config.numExperts,
        router_mode: config.routerMode,
        router_init_std: config.routerInitStd,
        router_bias: config.routerBias,
        omega_init: config.omegaInit,
        omega_noise_std: config.omegaNoiseStd,
        load_balance_coef: config.loadBalanceCoef,
        seed: config.seed,
      });
    case 'moelora':
      return sortKeys({
        ...lowRank,
        peft_type: 'MOELORA',
        num_experts: config.numExperts,
        top_k: config.topK ?? null,
        load_balance: config.loadBalance,
        load_balance_coef: config.loadBalanceCoef,
        router_init_std: config.routerInitStd,
        router_bias: config.routerBias,
        seed: config.seed,
      });
  }
}

/** Parse adapter_config.json content into an {@link AdapterConfig}; `file` names the source in errors. */
export function fromPeftConfig(json: unknown, file = 'adapter_config.json'): AdapterConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  const j = { ...(json as Json) };
  const used = new Set<string>();
  const take = (k: string): unknown => {
    used.add(k);
    const v = j[k];
    return v === null ? undefined : v;
  };
  const peftType = take('peft_type');
  const useDora = take('use_dora');
  let kind: AdapterConfig['kind'];
  if (peftType === 'LORA') kind = useDora === true ? 'dora' : 'lora';
  else if (peftType === 'MOR') kind = 'mor';
  else if (peftType === 'MOELORA') kind = 'moelora';
  else if (peftType === 'FULL') kind = 'full';
  else throw new UserError(`${file}: peft_type ${JSON.stringify(peftType)} is not supported (LORA, MOR, MOELORA, FULL)`);
  if (useDora === true && peftType !== 'LORA') throw new UserError(`${file}: use_dora is only valid with peft_type LORA`);

  const out: Json = { kind };
  const map = (from: string, to: string): void => {
    const v = take(from);
    if (v !== undefined) out[to] = v;
  };
  map('target_modules', 'targetModules');
  map('exclude_modules', 'excludeModules');
  map('layers_to_transform', 'layersToTransform');
  map('layers_pattern', 'layersPattern');
  map('modules_to_save', 'modulesToSave');
  map('base_model_name_or_path', 'baseModelNameOrPath');
  map('seed', 'seed');
  if (kind === 'full') {
    map('train_bias', 'trainBias');
  } else {
    map('r', 'r');
    map('lora_alpha', 'alpha');
    map('lora_dropout', 'dropout');
    map('use_rslora', 'useRslora');
    map('rank_pattern', 'rankPattern');
    map('alpha_pattern', 'alphaPattern');
    map('bias', 'bias');
    const init = take('init_lora_weights');
    if (init !== undefined) {
      if (init === true) out.init = 'default';
      else if (init === false || init === 'gaussian') out.init = init;
      else throw new UserError(`${file}: init_lora_weights=${JSON.stringify(init)} is not supported (true, false, "gaussian")`);
    }
    const loraBias = take('lora_bias');
    if (loraBias === true) {
      if (kind !== 'lora') throw new UserError(`${file}: lora_bias is only supported for plain LoRA`);
      out.loraBias = true;
    }
    const fanInFanOut = take('fan_in_fan_out');
    if (fanInFanOut === true) throw new UserError(`${file}: fan_in_fan_out=true (Conv1D/GPT-2 layout) is not supported`);
    if (kind === 'mor' || kind === 'moelora') {
      map('num_experts', 'numExperts');
      map('router_init_std', 'routerInitStd');
      map('router_bias', 'routerBias');
      map('load_balance_coef', 'loadBalanceCoef');
    }
    if (kind === 'mor') {
      map('router_mode', 'routerMode');
      map('omega_init', 'omegaInit');
      map('omega_noise_std', 'omegaNoiseStd');
    }
    if (kind === 'moelora') {
      map('top_k', 'topK');
      map('load_balance', 'loadBalance');
    }
  }
  for (const [k, v] of Object.entries(j)) {
    if (used.has(k) || INFORMATIONAL.has(k) || isOff(v)) continue;
    throw new UserError(`${file}: field "${k}" = ${JSON.stringify(v)} is not supported`);
  }
  return parseAdapterConfig(out, file);
}

function isOff(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

function sortKeys(o: Json): Json {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
