/**
 * `PeftModel`: a base model (any {@link Module} tree, e.g. `LlamaForCausalLM`) with adapters
 * injected in place, like PEFT's `PeftModel`. It is itself a Module whose tree is
 * `base_model.model.<base model>`, so its parameter names are PEFT's state-dict names.
 *
 * The base model is frozen; the ACTIVE adapter's tensors are trainable (unless it was loaded
 * for inference), the others are frozen, as in PEFT. Run the model as before
 * (`peft.model.forward(...)`): adapted layers are replaced in the tree.
 */
import { tf } from '../backend/tf.ts';
import { Module, type Param } from '../nn/module.ts';
import { Linear } from '../nn/linear.ts';
import { UserError } from '../errors.ts';
import { parseAdapterConfig, type AdapterConfig, type AdapterConfigInput } from './config.ts';
import { AdapterLayer, modelParameters } from './layer.ts';
import { isDeltaLayer, type DeltaAdapterLayer, type MergeOptions } from './deltaLayer.ts';
import { adapterKind } from './registry.ts';
import { biasMode } from './schema.ts';
import { mergeWithRouting, type RoutingVectors } from '../routing/fixedRouting.ts';
import { modulesToSavePaths, planAdapter, type PlannedTarget } from './targets.ts';
import { ParamCopies } from './paramCopies.ts';
import { countParameters, formatTrainableParameters, type ParamCounts } from './params.ts';
import { savePretrained, type SaveAdapterOptions } from './save.ts';

/** Holder giving the tree PEFT's `base_model.model` prefix. */
class BaseModelHolder extends Module {
  constructor(model: Module) {
    super();
    this.addChild('model', model);
  }
}

/** Options of {@link PeftModel.addAdapter}. */
export interface AddAdapterOptions {
  /** Frozen adapter (PEFT `inference_mode`): never made trainable by setAdapter. */
  inferenceMode?: boolean;
}

export type { RoutingVectors };

export class PeftModel<M extends Module = Module> extends Module {
  /** Config of each adapter, by name. */
  readonly peftConfig = new Map<string, AdapterConfig>();
  private active: string | undefined;
  private disabledDepth = 0;
  private readonly inference = new Set<string>();
  private readonly copies = new ParamCopies();

  /** Wrap `model` (mutated in place: its layers get replaced) and freeze it. */
  constructor(model: M) {
    super();
    this.addChild('base_model', new BaseModelHolder(model));
    for (const [, p] of model.namedParameters()) if (p instanceof tf.Variable) p.trainable = false;
  }

  /** The base model with the adapters injected (call its forward as usual). */
  get model(): M {
    return this.child('base_model').child<M>('model');
  }

  /** PEFT name of {@link model}. */
  getBaseModel(): M {
    return this.model;
  }

  /** The active adapter's name. */
  get activeAdapter(): string | undefined {
    return this.active;
  }

  /** Every adapter wrapper with its path in the base model. */
  adapterLayers(): [string, AdapterLayer][] {
    const out: [string, AdapterLayer][] = [];
    const walk = (m: Module, prefix: string): void => {
      if (m instanceof AdapterLayer) {
        out.push([prefix, m]);
        return;
      }
      for (const [n, c] of m.children()) walk(c, prefix ? `${prefix}.${n}` : n);
    };
    walk(this.model, '');
    return out;
  }

  /** The adapter wrappers that can merge (every kind but full fine-tuning), with their paths. */
  deltaLayers(): [string, DeltaAdapterLayer][] {
    return this.adapterLayers().filter((e): e is [string, DeltaAdapterLayer] => isDeltaLayer(e[1]));
  }

  /**
   * Add adapter `name` (not activated: call {@link setAdapter}, as PEFT). Validates the config
   * (UserError on unknown keys, bad values, targets matching nothing) before changing anything.
   */
  addAdapter(name: string, config: AdapterConfigInput | AdapterConfig, opts: AddAdapterOptions = {}): void {
    if (!name || /[.\s]/.test(name)) throw new UserError(`adapter name "${name}" must be non-empty, without dots or spaces`);
    if (this.peftConfig.has(name)) throw new UserError(`adapter "${name}" already exists`);
    const cfg = parseAdapterConfig(config);
    const plan = planAdapter(this.model, cfg);
    const savePaths = cfg.modulesToSave ? modulesToSavePaths(this.model, cfg.modulesToSave) : [];
    for (const t of plan) this.injectOne(name, cfg, t);
    for (const p of savePaths) {
      const owner = this.model.getModule(p);
      const params = owner.namedParameters();
      if (params.length === 0) throw new UserError(`modulesToSave "${p}" has no parameters of its own (tied weights?)`);
      for (const [k] of params) {
        const dot = k.lastIndexOf('.');
        const ownerPath = dot < 0 ? p : `${p}.${k.slice(0, dot)}`;
        this.copies.add(name, `${p}.${k}`, this.model.getModule(ownerPath), k.slice(dot + 1));
      }
    }
    const bias = biasMode(cfg);
    if (bias !== 'none') this.addBiasCopies(name, bias, plan);
    this.peftConfig.set(name, cfg);
    if (opts.inferenceMode) this.inference.add(name);
    for (const [, l] of this.adapterLayers()) if (l.hasAdapter(name)) l.setTrainable(name, false);
    this.copies.setTrainable(name, false);
    if (this.active === undefined) this.setAdapter(name);
  }

  private injectOne(name: string, cfg: AdapterConfig, t: PlannedTarget): void {
    const dot = t.path.lastIndexOf('.');
    const parent = dot < 0 ? this.model : this.model.getModule(t.path.slice(0, dot));
    const childName = t.path.slice(dot + 1);
    let layer = parent.child(childName);
    if (!(layer instanceof AdapterLayer)) {
      layer = createAdapterLayer(cfg.kind, layer as Linear, t.path);
      parent.replaceChild(childName, layer);
      (layer as AdapterLayer).setActiveAdapter(this.active);
      (layer as AdapterLayer).setDisabled(this.disabledDepth > 0);
    }
    (layer as AdapterLayer).addAdapter(name, t.spec);
  }

  private addBiasCopies(name: string, mode: 'all' | 'lora_only', plan: PlannedTarget[]): void {
    if (mode === 'all') {
      for (const [k] of modelParameters(this.model)) {
        if (!k.endsWith('bias')) continue;
        const dot = k.lastIndexOf('.');
        this.copies.add(name, k, this.model.getModule(k.slice(0, dot)), k.slice(dot + 1));
      }
    } else {
      for (const t of plan) {
        if (!t.hasBias) continue;
        this.copies.add(name, `${t.path}.base_layer.bias`, this.model.getModule(`${t.path}.base_layer`), 'bias');
      }
    }
  }

  /** Make `name` the active adapter (trainable unless loaded for inference); others frozen. */
  setAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new UserError(`no adapter named "${name}" (have: ${[...this.peftConfig.keys()].join(', ')})`);
    for (const n of this.peftConfig.keys()) this.setAdapterTrainable(n, n === name && !this.inference.has(n));
    this.active = name;
    for (const [, l] of this.adapterLayers()) l.setActiveAdapter(name);
    if (this.disabledDepth === 0) this.copies.activate(name);
  }

  private setAdapterTrainable(name: string, on: boolean): void {
    for (const [, l] of this.adapterLayers()) if (l.hasAdapter(name)) l.setTrainable(name, on);
    this.copies.setTrainable(name, on);
  }

  /** Mark adapter `name` trainable or frozen (PEFT `is_trainable` / `inference_mode`). */
  setTrainable(name: string, on: boolean): void {
    if (!this.peftConfig.has(name)) throw new UserError(`no adapter named "${name}"`);
    if (on) this.inference.delete(name);
    else this.inference.add(name);
    this.setAdapterTrainable(name, on && name === this.active);
  }

  /**
   * Run `fn` with every adapter bypassed (the base model's output), then restore the previous
   * state, also when `fn` throws or its promise rejects. Merged adapters are unmerged for the
   * duration and merged again afterwards.
   */
  withAdapterDisabled<T>(fn: () => T): T {
    const merged = this.deltaLayers().flatMap(([, l]) => (l.merged ? [{ l, ...l.merged }] : []));
    for (const { l } of merged) l.unmerge();
    this.disabledDepth++;
    this.applyDisabled();
    const restore = (): void => {
      this.disabledDepth--;
      this.applyDisabled();
      for (const { l, name, opts } of merged) l.merge(name, opts);
    };
    let result: T;
    try {
      result = fn();
    } catch (e) {
      restore();
      throw e;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }

  private applyDisabled(): void {
    const off = this.disabledDepth > 0;
    for (const [, l] of this.adapterLayers()) l.setDisabled(off);
    this.copies.activate(off ? undefined : this.active);
  }

  /** Remove adapter `name` and dispose its tensors; layers left without adapters are unwrapped. */
  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new UserError(`no adapter named "${name}"`);
    for (const [path, l] of this.adapterLayers()) {
      if (!l.hasAdapter(name)) continue;
      l.deleteAdapter(name);
      if (l.adapterNames().length === 0) this.replaceAt(path, l.unload(false));
    }
    this.copies.delete(name);
    this.peftConfig.delete(name);
    this.inference.delete(name);
    if (this.active === name) {
      this.active = undefined;
      const next = this.peftConfig.keys().next();
      if (!next.done) this.setAdapter(next.value);
      else for (const [, l] of this.adapterLayers()) l.setActiveAdapter(undefined);
    }
  }

  /** Replace the module at `path` of the base model. */
  replaceAt(path: string, m: Module): void {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this.model : this.model.getModule(path.slice(0, dot));
    parent.replaceChild(path.slice(dot + 1), m);
  }

  /** Adapter `name`'s tensors keyed by full PEFT key (`base_model.model.<path>.lora_A.weight`). */
  adapterTensors(name: string): Map<string, tf.Variable> {
    if (!this.peftConfig.has(name)) throw new UserError(`no adapter named "${name}"`);
    const out = new Map<string, tf.Variable>();
    for (const [path, l] of this.adapterLayers()) {
      if (!l.hasAdapter(name)) continue;
      for (const [k, v] of l.state(name).tensors) out.set(`base_model.model.${path}.${k}`, v);
    }
    for (const [k, v] of this.copies.tensors(name)) out.set(`base_model.model.${k}`, v);
    return out;
  }

  /** Write the adapters in PEFT's layout (see `savePretrained` in save.ts). */
  savePretrained(dir: string, opts: SaveAdapterOptions = {}): void {
    savePretrained(this, dir, opts);
  }

  /** Trainable / all parameter counts (PEFT `get_nb_trainable_parameters`). */
  countParameters(): ParamCounts {
    return countParameters(this);
  }

  /** Print `trainable params: X || all params: Y || trainable%: Z` (PEFT's format). */
  printTrainableParameters(write: (line: string) => void = console.log): void {
    write(formatTrainableParameters(this.countParameters()));
  }

  /** Fold adapter `name` (default: active) into the base weights of every layer holding it. */
  merge(name = this.active, opts: MergeOptions = {}): void {
    if (name === undefined) throw new UserError('no adapter to merge');
    const done: DeltaAdapterLayer[] = [];
    try {
      for (const [, l] of this.deltaLayers()) {
        if (!l.hasAdapter(name)) continue;
        l.merge(name, opts);
        done.push(l);
      }
    } catch (e) {
      for (const l of done) l.unmerge();
      throw e;
    }
  }

  /** Undo {@link merge} (and `mergeWithRouting`) everywhere. */
  unmerge(): void {
    for (const [, l] of this.deltaLayers()) l.unmerge();
  }

  /**
   * Merge the active adapter into the base weights and remove every wrapper: returns the plain
   * base model (this PeftModel must not be used afterwards). Kinds that merge only under fixed
   * routing need `opts.routing` unless their routing is uniform or pinned; kinds that never
   * merge are refused.
   */
  mergeAndUnload(opts: { routing?: RoutingVectors } = {}): M {
    return this.unloadAll(true, opts.routing);
  }

  /** Remove every adapter without merging: returns the original base model. */
  unload(): M {
    return this.unloadAll(false);
  }

  private unloadAll(merge: boolean, routing?: RoutingVectors): M {
    const layers = this.adapterLayers();
    if (merge) {
      // Check every layer first so a refusal leaves the model untouched.
      this.unmerge();
      if (routing) mergeWithRouting(this, routing);
      else this.merge();
    }
    for (const [path, l] of layers) this.replaceAt(path, l.unload(merge));
    this.copies.bake(merge ? this.active : undefined);
    this.peftConfig.clear();
    this.active = undefined;
    return this.model;
  }

  /** Dispose every tensor (base model and adapters). */
  override dispose(): void {
    this.copies.dispose();
    for (const [, m] of this.model.namedModules()) m.releaseCaches();
    for (const [, l] of this.adapterLayers()) l.dispose();
    const seen = new Set<Param>();
    for (const [, p] of this.model.namedParameters()) {
      if (seen.has(p) || p.isDisposed) continue;
      seen.add(p);
      p.dispose();
    }
  }
}

/** A fresh wrapper of `kind` around `base`. */
export function createAdapterLayer(kind: AdapterConfig['kind'], base: Linear, path: string): AdapterLayer {
  return adapterKind(kind).createLayer(base, path);
}

/**
 * Wrap `model` with a new adapter `adapterName` (default `"default"`) built from `config`,
 * freezing the base model: PEFT's `get_peft_model`.
 */
export function getPeftModel<M extends Module>(model: M, config: AdapterConfigInput | AdapterConfig, adapterName = 'default'): PeftModel<M> {
  const peft = new PeftModel(model);
  peft.addAdapter(adapterName, config);
  return peft;
}
