/**
 * The PEFT `adapter_config.json` boundary: camelCase {@link AdapterConfig} <-> PEFT's
 * snake_case fields. Each kind's field table (`peft` in its definition, see kind.ts) is used
 * both ways; this file adds the selection fields every kind shares. LoRA and DoRA are written
 * exactly as PEFT writes a `LoraConfig` (`peft_type: "LORA"`, DoRA as `use_dora: true`), so
 * Python PEFT can load them; the other kinds use a `peft_type` of their own.
 *
 * Reading is strict about meaning, lenient about bookkeeping: every field we understand is
 * validated; other PEFT fields are accepted when they are informational (`task_type`,
 * `peft_version`, ...) or hold an "off" value (null, false, {}, []); anything else (for
 * example `fan_in_fan_out: true` or `init_lora_weights: "pissa"`) is a {@link UserError}
 * naming the field.
 */
import { UserError } from '../errors.ts';
import { parseAdapterConfig, type AdapterConfig } from './config.ts';
import type { PeftField } from './kind.ts';
import { adapterKind, adapterKinds } from './registry.ts';
import { fanInFanOutField, loraBiasRefused } from './schema.ts';

/** Selection and bookkeeping fields of every kind. */
const COMMON_FIELDS: PeftField[] = [
  { peft: 'base_model_name_or_path', field: 'baseModelNameOrPath' },
  { peft: 'exclude_modules', field: 'excludeModules' },
  { peft: 'layers_pattern', field: 'layersPattern' },
  { peft: 'layers_to_transform', field: 'layersToTransform' },
  { peft: 'modules_to_save', field: 'modulesToSave' },
  { peft: 'target_modules', field: 'targetModules' },
];

/** Written for every kind, never read back. */
const WRITTEN: Record<string, unknown> = { inference_mode: true, revision: null, task_type: 'CAUSAL_LM' };

/** Read for every kind when its own table does not name them. */
const READ_ALWAYS: PeftField[] = [{ peft: 'seed', field: 'seed' }];

/** Read for every low-rank kind when its own table does not name them: refusals with a reason. */
const READ_LOW_RANK: PeftField[] = [fanInFanOutField, loraBiasRefused];

/** PEFT fields that carry no meaning for loading here; accepted with any value. */
const INFORMATIONAL = new Set([
  'task_type', 'inference_mode', 'revision', 'auto_mapping', 'peft_version', 'megatron_core',
  'qalora_group_size', 'runtime_config', 'ensure_weight_tying', 'seed',
]);

type Json = Record<string, unknown>;

/** adapter_config.json content (snake_case, PEFT field names, sorted) for `config`. */
export function toPeftConfig(config: AdapterConfig): Json {
  const def = adapterKind(config.kind);
  const c = config as unknown as Json;
  const out: Json = { ...WRITTEN, peft_type: def.peft.peftType };
  for (const f of [...COMMON_FIELDS, ...def.peft.fields]) {
    const v = f.field === undefined ? undefined : c[f.field];
    out[f.peft] = f.write ? f.write(v) : (v ?? null);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Parse adapter_config.json content into an {@link AdapterConfig}; `file` names the source in errors. */
export function fromPeftConfig(json: unknown, file = 'adapter_config.json'): AdapterConfig {
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new UserError(`${file}: expected a JSON object`);
  const j = json as Json;
  const peftType = j.peft_type;
  const def = adapterKinds().find((k) => k.peft.peftType === peftType && (k.peft.claims?.(j) ?? true));
  if (!def) {
    const types = [...new Set(adapterKinds().map((k) => k.peft.peftType))].join(', ');
    throw new UserError(`${file}: peft_type ${JSON.stringify(peftType)} is not supported (${types})`);
  }
  const used = new Set<string>(['peft_type']);
  const out: Json = { kind: def.kind };
  const extra = [...READ_ALWAYS, ...(def.lowRank ? READ_LOW_RANK : [])];
  for (const f of [...COMMON_FIELDS, ...def.peft.fields, ...extra]) {
    if (used.has(f.peft)) continue;
    used.add(f.peft);
    const raw = j[f.peft] === null ? undefined : j[f.peft];
    const v = f.read ? f.read(raw, file) : raw;
    if (f.field !== undefined && v !== undefined) out[f.field] = v;
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
