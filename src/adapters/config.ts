/**
 * Adapter configurations: each kind's zod schema lives in its own module (lora.ts, mor.ts, ...)
 * and the registry joins them in a discriminated union on `kind`. Parsed once at the boundary
 * ({@link parseAdapterConfig}); inside, code trusts the types. Field names are the camelCase
 * forms of PEFT's `LoraConfig` fields (`r`, `alpha` for `lora_alpha`, `dropout` for
 * `lora_dropout`, `useRslora`, ...); the PEFT `adapter_config.json` mapping is peftConfig.ts.
 *
 * Every **(option)** of docs/mor.md is a field of MoR's config: `omegaInit`/`omegaNoiseStd`,
 * `routerBias`, `routerInitStd`, `dropout`, `routerMode`.
 */
import type { z } from 'zod';
import { UserError } from '../errors.ts';
import { ADAPTER_KINDS, adapterConfigSchema, adapterKind, type AdapterConfig } from './registry.ts';

export { ADAPTER_KINDS, adapterConfigSchema };
export type { AdapterConfig, AdapterConfigInput, AdapterKind } from './registry.ts';
export { loraScaling } from './schema.ts';

/** Default `targetModules` of `kind` when the config gives none. */
export function defaultTargetModules(kind: string): string[] | string {
  return adapterKind(kind).defaultTargets;
}

/**
 * Validate and fill defaults. Throws a {@link UserError} naming the field (and `where`, e.g.
 * a file name) on unknown keys, wrong types or out-of-range values.
 */
export function parseAdapterConfig(input: unknown, where = 'adapter config'): AdapterConfig {
  const res = adapterConfigSchema.safeParse(input);
  if (res.success) {
    const c = res.data;
    const def = adapterKind(c.kind);
    const problem = def.validate?.(c as never);
    if (problem) throw new UserError(`${where}: ${problem}`);
    for (const p of [c.targetModules, c.excludeModules]) {
      if (typeof p === 'string' && p !== 'all-linear') checkRegex(p, where);
    }
    if ('rankPattern' in c) for (const k of [...Object.keys(c.rankPattern), ...Object.keys(c.alphaPattern)]) checkRegex(k, where);
    return c;
  }
  throw new UserError(`${where}: ${formatZodIssue(res.error.issues[0])}`);
}

function checkRegex(p: string, where: string): void {
  try {
    new RegExp(p);
  } catch (e) {
    throw new UserError(`${where}: invalid regex "${p}": ${(e as Error).message}`);
  }
}

/** One zod issue as `field: message` (unknown keys named explicitly). */
export function formatZodIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    return `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `"${path ? `${path}.` : ''}${k}"`).join(', ')}`;
  }
  if (issue.code === 'invalid_union' && path === 'kind') {
    return `kind must be one of ${ADAPTER_KINDS.join(', ')}`;
  }
  return `${path || '(root)'}: ${issue.message}`;
}
