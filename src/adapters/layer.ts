/**
 * The one small interface every adapter type implements: an {@link AdapterLayer} stands where
 * a frozen {@link Linear} stood (it is a `LinearLike`), keeps that Linear as its child
 * `base_layer` (as PEFT does), and holds one or more named adapters of its kind. Merging is
 * not part of it: the layers that can fold an adapter into the base weight extend
 * `DeltaAdapterLayer` (deltaLayer.ts).
 */
import { tf } from '../backend/tf.ts';
import { Module, type Param } from '../nn/module.ts';
import type { Linear, LinearLike } from '../nn/linear.ts';
import type { ForwardContext } from '../nn/context.ts';
import { UserError } from '../errors.ts';
import { pushAll } from '../util/array.ts';

/** One adapter on one layer: its tensors keyed by PEFT suffix (`lora_A.weight`). */
export interface AdapterState {
  readonly name: string;
  /** Trainable tensors keyed by PEFT key suffix; shapes fixed at creation. */
  readonly tensors: Map<string, tf.Variable>;
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

/**
 * Base class of every adapter type: `S` the per-adapter state, `P` the per-layer spec its
 * kind's `layerSpec` builds (what {@link addAdapter} takes). It keeps the adapters, which one
 * is active and whether all are bypassed; where the tensors live and whether the adapter can be
 * folded into the base weight is up to the two families below it: {@link DeltaAdapterLayer}
 * (deltaLayer.ts: a delta beside the frozen base, mergeable) and full fine-tuning (full.ts:
 * the trained weight IS the base layer's).
 */
export abstract class AdapterLayer<S extends AdapterState = AdapterState, P = unknown> extends Module implements LinearLike {
  /** The registry name of this layer's kind. */
  abstract readonly kind: string;
  /** Dotted path of the adapted layer in the base model (`model.layers.0.mlp.up_proj`). */
  readonly modulePath: string;
  protected readonly states = new Map<string, S>();
  private active: string | undefined;
  private disabledFlag = false;

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

  /** Make `name` the adapter used by forward (undefined: none). */
  setActiveAdapter(name: string | undefined): void {
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

  /** The adapter that forward applies now (undefined: plain base output). */
  protected effectiveAdapter(): S | undefined {
    if (this.disabledFlag || this.active === undefined) return undefined;
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

  /** Add a fully built adapter state. */
  protected addState(s: S): void {
    if (this.states.has(s.name)) throw new UserError(`${this.modulePath}: adapter "${s.name}" already exists`);
    this.states.set(s.name, s);
  }

  /** Set `trainable` on every tensor of adapter `name`. */
  setTrainable(name: string, on: boolean): void {
    for (const v of this.state(name).tensors.values()) v.trainable = on;
  }

  /** Remove adapter `name` and dispose its tensors. */
  deleteAdapter(name: string): void {
    const s = this.state(name);
    this.states.delete(name);
    if (this.active === name) this.active = undefined;
    this.onActivationChanged();
    this.disposeState(s);
  }

  /** Dispose a removed state's tensors. */
  protected disposeState(s: S): void {
    for (const v of s.tensors.values()) v.dispose();
  }

  /** Dispose every adapter state (the layer keeps no adapter afterwards). */
  protected disposeStates(): void {
    for (const s of this.states.values()) this.disposeState(s);
    this.states.clear();
  }

  /**
   * Detach this wrapper: returns the Linear to put back in the parent — the base layer with
   * the active adapter folded in when `merge` is set — and disposes every adapter tensor. The
   * wrapper must not be used afterwards.
   */
  abstract unload(merge: boolean): Linear;

  /** Dispose base layer and every adapter (including inactive ones). */
  override dispose(): void {
    this.baseLayer.dispose();
    this.disposeStates();
  }
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
