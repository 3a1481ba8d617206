/**
 * Which modules an adapter config selects, and the per-layer settings after `rankPattern` /
 * `alphaPattern`, following PEFT's `check_target_module_exists` and `get_pattern_key`:
 *  - a list of names matches a module whose path equals a name or ends with `.<name>`;
 *  - a string is a regex that must match the WHOLE path (`re.fullmatch`);
 *  - `"all-linear"` selects every Linear except the output head `lm_head`;
 *  - `layersToTransform` keeps modules whose layer index (the number after `layers.`, or
 *    after `layersPattern`) is listed; `excludeModules` and `modulesToSave` are never targets.
 * {@link planAdapter} resolves everything without touching the model, so a config (or a file
 * being loaded) is validated before the model changes.
 */
import { Module } from '../nn/module.ts';
import { Linear } from '../nn/linear.ts';
import { UserError } from '../errors.ts';
import type { AdapterConfig } from './config.ts';
import { AdapterLayer } from './layer.ts';
import { adapterKind } from './registry.ts';
import { patternValue } from './schema.ts';
import { pushAll } from '../util/array.ts';

export { patternValue };

/** Per-layer spec of any kind (what its definition's `layerSpec` builds). */
export type LayerSpec = unknown;

/** One selected module. */
export interface PlannedTarget {
  /** Dotted path in the base model. */
  path: string;
  inFeatures: number;
  outFeatures: number;
  hasBias: boolean;
  /** Settings after rank/alpha patterns. */
  spec: LayerSpec;
  /** Adapter tensors of this layer: PEFT key suffix -> shape. */
  shapes: Map<string, number[]>;
}

/** Every module of the tree with its path, not descending into adapter wrappers. */
export function walkModules(root: Module, prefix = ''): [string, Module][] {
  const out: [string, Module][] = [[prefix, root]];
  if (root instanceof AdapterLayer) return out;
  for (const [name, c] of root.children()) pushAll(out, walkModules(c, prefix ? `${prefix}.${name}` : name));
  return out;
}

/** PEFT suffix match: `key === name` or `key` ends with `.name`. */
function suffixMatch(key: string, names: string[]): boolean {
  return names.some((n) => key === n || key.endsWith(`.${n}`));
}

function fullMatch(pattern: string, key: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(key);
}

/** Layer index of a path (`model.layers.3.mlp.up_proj` -> 3), PEFT's rule. */
export function layerIndex(key: string, layersPattern?: string | string[]): number | undefined {
  const patterns = layersPattern === undefined ? [undefined] : [layersPattern].flat();
  for (const p of patterns) {
    const m = p === undefined ? /^.*?\.[^.]*\.(\d+)\./.exec(key) : new RegExp(`^.*?\\.${p}\\.(\\d+)\\.`).exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Is `key` excluded by `excludeModules` / `modulesToSave`? */
function isExcluded(config: AdapterConfig, key: string): boolean {
  const ex = config.excludeModules;
  if (typeof ex === 'string' ? fullMatch(ex, key) : ex && suffixMatch(key, ex)) return true;
  return (config.modulesToSave ?? []).some((m) => new RegExp(`(^|.*\\.)${escapeRegex(m)}($|\\..*)`).test(key));
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Does `key` (a module path) match the config's targets (before the Linear check)? */
export function matchesTarget(config: AdapterConfig, key: string, module: Module): boolean {
  if (key === '' || isExcluded(config, key)) return false;
  const targets = config.targetModules ?? adapterKind(config.kind).defaultTargets;
  let found: boolean;
  if (targets === 'all-linear') {
    found = isLinearish(module) && key.split('.').pop() !== 'lm_head';
  } else if (typeof targets === 'string') {
    return fullMatch(targets, key);
  } else {
    found = suffixMatch(key, targets);
  }
  const layers = config.layersToTransform;
  if (found && layers !== undefined && !(Array.isArray(layers) && layers.length === 0)) {
    const idx = layerIndex(key, config.layersPattern);
    found = idx !== undefined && (Array.isArray(layers) ? layers.includes(idx) : idx === layers);
  }
  return found;
}

function isLinearish(m: Module): m is Linear | AdapterLayer {
  return m instanceof Linear || m instanceof AdapterLayer;
}

/** The per-layer spec for `path` (rank/alpha patterns applied). */
export function layerSpec(config: AdapterConfig, path: string): LayerSpec {
  return adapterKind(config.kind).layerSpec(config, path);
}

/** Key suffixes and shapes of one adapter of `kind` on a layer. */
export function tensorShapes(kind: string, spec: LayerSpec, dIn: number, dOut: number, hasBias: boolean): Map<string, number[]> {
  return adapterKind(kind).tensorShapes(spec, dIn, dOut, hasBias);
}

/**
 * Resolve the modules `config` adapts in `model` (a base model, possibly already holding other
 * adapters). Throws a UserError when a target matches nothing, names a module that is not a
 * linear layer, or lands on a layer holding adapters of another kind.
 */
export function planAdapter(model: Module, config: AdapterConfig): PlannedTarget[] {
  if (typeof config.targetModules === 'string' && config.targetModules !== 'all-linear' && config.layersToTransform !== undefined) {
    throw new UserError('layersToTransform needs targetModules as a list of names or "all-linear" (as PEFT)');
  }
  const out: PlannedTarget[] = [];
  const linearPaths: string[] = [];
  for (const [path, m] of walkModules(model)) {
    if (isLinearish(m)) linearPaths.push(path);
    if (!matchesTarget(config, path, m)) continue;
    if (!isLinearish(m)) {
      throw new UserError(`target module "${path}" is a ${m.constructor.name}, not a linear layer`);
    }
    if (m instanceof AdapterLayer && m.adapterNames().length > 0 && m.kind !== config.kind) {
      throw new UserError(
        `module "${path}" already holds ${m.kind} adapter(s) (${m.adapterNames().join(', ')}); ` +
          `a layer holds adapters of one kind, cannot add a ${config.kind} adapter`,
      );
    }
    const base = m instanceof AdapterLayer ? m.baseLayer : m;
    const spec = layerSpec(config, path);
    const hasBias = base.bias !== undefined;
    out.push({
      path, spec, hasBias,
      inFeatures: base.inFeatures,
      outFeatures: base.outFeatures,
      shapes: tensorShapes(config.kind, spec, base.inFeatures, base.outFeatures, hasBias),
    });
  }
  if (out.length === 0) {
    const targets = config.targetModules ?? adapterKind(config.kind).defaultTargets;
    const sample = linearPaths.slice(0, 4).join(', ');
    throw new UserError(
      `targetModules ${JSON.stringify(targets)}${config.layersToTransform !== undefined ? ` with layersToTransform ${JSON.stringify(config.layersToTransform)}` : ''} ` +
        `matched no linear layer of the model (linear layers: ${sample || 'none'}${linearPaths.length > 4 ? ', ...' : ''})`,
    );
  }
  return out;
}

/** Paths of the modules matched by `modulesToSave` (PEFT: path equals or ends with `.name`). */
export function modulesToSavePaths(model: Module, names: string[]): string[] {
  const out: string[] = [];
  for (const name of names) {
    const hits = walkModules(model).filter(([p]) => p !== '' && (p === name || p.endsWith(`.${name}`)));
    if (hits.length === 0) throw new UserError(`modulesToSave "${name}" matched no module of the model`);
    pushAll(out, hits.map(([p]) => p));
  }
  return [...new Set(out)];
}
