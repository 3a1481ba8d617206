/**
 * The one small interface every adapter type implements: an {@link AdapterLayer} stands where
 * a frozen {@link Linear} stood (it is a `LinearLike`), keeps that Linear as its child
 * `base_layer` (as PEFT does), and holds one or more named adapters of its kind.
 *
 * Adapter tensors are registered in the module tree under PEFT's internal names with the
 * adapter name after the first component (`lora_A.default.weight`,
 * `mor_omega_A.default`), so `namedParameters()` reads like a PEFT `state_dict()`; the saved
 * keys drop the adapter name (`lora_A.weight`) exactly as PEFT's `get_peft_model_state_dict`.
 */
import { tf } from '../backend/tf.ts';
import { Module, type Param } from '../nn/module.ts';
import { Linear, type LinearLike } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { UserError } from '../errors.ts';
import { countNonFinite } from '../io/finite.ts';
import { pushAll } from '../util/array.ts';

/** One adapter on one layer: its tensors keyed by PEFT suffix (`lora_A.weight`). */
export interface AdapterState {
  readonly name: string;
  /** Trainable tensors keyed by PEFT key suffix; shapes fixed at creation. */
  readonly tensors: Map<string, tf.Variable>;
}

/** Options of {@link AdapterLayer.merge}. */
export interface MergeOptions {
  /** Kinds that merge under fixed routing: the routing vector `[N]` folded into W (see `mergeWithRouting`). */
  routing?: ArrayLike<number>;
}

/** A layer whose routing can be pinned to a fixed vector (kinds with `merge: "fixedRouting"`). */
export interface FixedRoutingLayer {
  /** Pin adapter `name`'s routing to `g` `[N]` for every token (undefined: use the router again). */
  setFixedRouting(name: string, g: ArrayLike<number> | undefined): void;
}

/** A module-tree node holding the per-adapter entries of one PEFT dict (`lora_A`, ...). */
export class AdapterDict extends Module {
  /** Register a parameter directly (ParameterDict style: `mor_omega_A.<name>`). */
  setParam(name: string, p: Param): void {
    this.addParam(name, p);
  }

  /** Register a child holder (ModuleDict style: `lora_A.<name>.weight`). */
  setChild(name: string, m: Module): void {
    this.addChild(name, m);
  }
}

/** Holder of one adapter's parameters inside an {@link AdapterDict}. */
class ParamHolder extends Module {
  setParam(name: string, p: Param): void {
    this.addParam(name, p);
  }
}

/**
 * Base class of every adapter type: `S` the per-adapter state, `P` the per-layer spec its
 * kind's `layerSpec` builds (what {@link addAdapter} takes).
 */
export abstract class AdapterLayer<S extends AdapterState = AdapterState, P = unknown> extends Module implements LinearLike {
  /** The registry name of this layer's kind. */
  abstract readonly kind: string;
  /** Dotted path of the adapted layer in the base model (`model.layers.0.mlp.up_proj`). */
  readonly modulePath: string;
  protected readonly states = new Map<string, S>();
  private active: string | undefined;
  private disabledFlag = false;
  private mergedState: { name: string; original: Linear; opts: MergeOptions } | undefined;

  constructor(base: Linear, modulePath: string) {
    super();
    this.modulePath = modulePath;
    this.addChild('base_layer', base);
  }

  /** The frozen wrapped layer (the merged one while merged). */
  get baseLayer(): Linear {
    return this.child<Linear>('base_layer');
  }

  get inFeatures(): number {
    return this.baseLayer.inFeatures;
  }

  get outFeatures(): number {
    return this.baseLayer.outFeatures;
  }

  /** Name of the active adapter (may be absent from this layer: then it passes through). */
  get activeAdapter(): string | undefined {
    return this.active;
  }

  /** Names of the adapters held by this layer, in insertion order. */
  adapterNames(): string[] {
    return [...this.states.keys()];
  }

  hasAdapter(name: string): boolean {
    return this.states.has(name);
  }

  /** The state of adapter `name`; throws if absent. */
  state(name: string): S {
    const s = this.states.get(name);
    if (!s) throw new UserError(`${this.modulePath}: no adapter named "${name}"`);
    return s;
  }

  /** Create adapter `name` with fresh parameters from its per-layer spec. */
  abstract addAdapter(name: string, spec: P): void;

  /** Make `name` the adapter used by forward (undefined: none). Unmerges a different merged adapter. */
  setActiveAdapter(name: string | undefined): void {
    if (this.mergedState && this.mergedState.name !== name) this.unmerge();
    this.active = name;
    this.onActivationChanged();
  }

  get disabled(): boolean {
    return this.disabledFlag;
  }

  /** Bypass every adapter (forward = base layer). */
  setDisabled(on: boolean): void {
    this.disabledFlag = on;
    this.onActivationChanged();
  }

  /** Name of the adapter merged into the base weight, if any. */
  get mergedAdapter(): string | undefined {
    return this.mergedState?.name;
  }

  /** Options the merged adapter was merged with (MoR routing), if merged. */
  get mergedOptions(): MergeOptions | undefined {
    return this.mergedState?.opts;
  }

  /** The adapter that forward applies now (undefined: plain base output). */
  protected effectiveAdapter(): S | undefined {
    if (this.disabledFlag || this.mergedState || this.active === undefined) return undefined;
    return this.states.get(this.active);
  }

  forward(x: tf.Tensor, ctx?: ForwardContext): tf.Tensor {
    const s = this.effectiveAdapter();
    if (!s) return this.baseLayer.forward(x, ctx);
    return tf.tidy(() => this.adapterForward(s, x, ctx));
  }

  /** Output of the base layer with adapter `s` applied, for x `[..., in]`. */
  protected abstract adapterForward(s: S, x: tf.Tensor, ctx: ForwardContext | undefined): tf.Tensor;

  /** Hook for subclasses whose parameters move when the active adapter changes (full). */
  protected onActivationChanged(): void {}

  /** Add a fully built adapter state and register its tensors under PEFT names. */
  protected addState(s: S): void {
    if (this.states.has(s.name)) throw new UserError(`${this.modulePath}: adapter "${s.name}" already exists`);
    this.states.set(s.name, s);
    this.registerState(s);
  }

  /** Register `s`'s tensors in the module tree (`lora_A.<name>.weight`). */
  protected registerState(s: S): void {
    for (const [key, v] of s.tensors) {
      const dot = key.indexOf('.');
      const dictName = dot < 0 ? key : key.slice(0, dot);
      const dict = (findChild(this, dictName) as AdapterDict | undefined) ?? this.addChild(dictName, new AdapterDict());
      if (dot < 0) {
        dict.setParam(s.name, v);
      } else {
        let holder = findChild(dict, s.name) as ParamHolder | undefined;
        if (!holder) dict.setChild(s.name, (holder = new ParamHolder()));
        holder.setParam(key.slice(dot + 1), v);
      }
    }
  }

  /** Remove adapter `name`'s entries from the PEFT dicts (rebuilding them without it). */
  protected unregisterState(name: string): void {
    for (const [childName, c] of this.children()) {
      if (!(c instanceof AdapterDict)) continue;
      const fresh = new AdapterDict();
      for (const [pn, p] of c.ownParams()) if (pn !== name) fresh.setParam(pn, p);
      for (const [cn, cc] of c.children()) if (cn !== name) fresh.setChild(cn, cc);
      this.replaceChild(childName, fresh);
    }
  }

  /** Set `trainable` on every tensor of adapter `name`. */
  setTrainable(name: string, on: boolean): void {
    for (const v of this.state(name).tensors.values()) v.trainable = on;
  }

  /** Remove adapter `name` and dispose its tensors. */
  deleteAdapter(name: string): void {
    const s = this.state(name);
    if (this.mergedState?.name === name) this.unmerge();
    this.unregisterState(name);
    this.states.delete(name);
    if (this.active === name) this.active = undefined;
    this.onActivationChanged();
    this.disposeState(s);
  }

  /** Dispose a removed state's tensors. */
  protected disposeState(s: S): void {
    for (const v of s.tensors.values()) v.dispose();
  }

  /**
   * Weight (and bias) of the base layer with adapter `s` folded in. Throws a UserError for
   * adapters whose output depends on the input through a router.
   */
  protected abstract mergedWeights(s: S, opts: MergeOptions): { weight: tf.Tensor2D; bias?: tf.Tensor1D };

  /**
   * Fold adapter `name` (default: the active one) into the base weight: forward then costs
   * only the base matmul. The original base layer is kept for {@link unmerge} (exact).
   */
  merge(name = this.active, opts: MergeOptions = {}): void {
    if (name === undefined) throw new UserError(`${this.modulePath}: no active adapter to merge`);
    if (this.mergedState) {
      if (this.mergedState.name === name) return;
      this.unmerge();
    }
    const s = this.state(name);
    const { weight, bias } = this.mergedWeights(s, opts);
    // As MoR refuses a non-finite routing vector: never fold NaN/Inf into the base weight.
    const bad = countNonFinite(weight.dataSync() as Float32Array) + (bias ? countNonFinite(bias.dataSync() as Float32Array) : 0);
    if (bad > 0) {
      weight.dispose();
      bias?.dispose();
      throw new UserError(`${this.modulePath}: merging adapter "${name}" gives ${bad} non-finite values (NaN/Inf); refusing to merge`);
    }
    const original = this.baseLayer;
    this.replaceChild('base_layer', new Linear(weight, bias));
    this.mergedState = { name, original, opts };
  }

  /** Undo {@link merge}: restore the original base layer (bit-exact). */
  unmerge(): void {
    if (!this.mergedState) return;
    const merged = this.baseLayer;
    this.replaceChild('base_layer', this.mergedState.original);
    this.mergedState = undefined;
    merged.dispose();
  }

  /**
   * Detach this wrapper: returns the Linear to put back in the parent — the base layer with
   * the active adapter merged when `merge` is set — and disposes every adapter tensor. The
   * wrapper must not be used afterwards.
   */
  unload(merge: boolean, opts: MergeOptions = {}): Linear {
    let out: Linear;
    if (merge && this.active !== undefined && this.states.has(this.active)) {
      this.merge(this.active, opts);
      out = this.baseLayer;
      this.mergedState!.original.dispose();
    } else {
      this.unmerge();
      out = this.baseLayer;
    }
    this.mergedState = undefined;
    for (const s of this.states.values()) this.disposeState(s);
    this.states.clear();
    return out;
  }

  /** Dispose base layer and every adapter (including inactive ones). */
  override dispose(): void {
    this.unmerge();
    this.baseLayer.dispose();
    for (const s of this.states.values()) this.disposeState(s);
    this.states.clear();
  }
}

function findChild(m: Module, name: string): Module | undefined {
  return m.children().find(([n]) => n === name)?.[1];
}

/**
 * The parameters of the model itself, found by structure: every parameter of the tree except
 * those held in an adapter's PEFT dicts (`lora_A`, ...). A full adapter's trainable weight is
 * the layer's own parameter and counts as the model's.
 */
export function modelParameters(m: Module, prefix = ''): [string, Param][] {
  if (m instanceof AdapterDict) return [];
  const out: [string, Param][] = m.ownParams().map(([n, p]) => [prefix ? `${prefix}.${n}` : n, p]);
  for (const [n, c] of m.children()) pushAll(out, modelParameters(c, prefix ? `${prefix}.${n}` : n));
  return out;
}

/** `true` if `m` is an adapter wrapper. */
export function isAdapterLayer(m: Module): m is AdapterLayer {
  return m instanceof AdapterLayer;
}

/** Frozen copy of a tensor as a plain tf.Tensor (never a Variable). */
export function frozenClone<T extends tf.Tensor>(t: T): T {
  return tf.tidy(() => tf.add(t, 0) as T);
}
