/**
 * The adapters that add a delta beside the frozen base layer (LoRA, DoRA, MoELoRA, MoR,
 * HydraLoRA), as opposed to full fine-tuning, whose trained weight is the base layer's own.
 *
 * Their tensors are registered in the module tree under PEFT's internal names with the adapter
 * name after the first component (`lora_A.default.weight`, `mor_omega_A.default`), so
 * `namedParameters()` reads like a PEFT `state_dict()`; the saved keys drop the adapter name
 * (`lora_A.weight`) exactly as PEFT's `get_peft_model_state_dict`.
 *
 * Merging folds the delta into a new base weight and keeps the original for an exact unmerge;
 * each kind says how in {@link DeltaAdapterLayer.mergedWeights} (a kind that routes per token
 * throws there). Whether a kind merges at all is its registry definition's `merge`.
 */
import { tf } from '../backend/tf.ts';
import { Module, type Param } from '../nn/module.ts';
import { Linear } from '../nn/linear.ts';
import { UserError } from '../errors.ts';
import { countNonFinite } from '../io/finite.ts';
import { AdapterDict, AdapterLayer, type AdapterState } from './layer.ts';

/** Options of {@link DeltaAdapterLayer.merge}. */
export interface MergeOptions {
  /** Kinds that merge under fixed routing: the routing vector `[N]` folded into W (see `mergeWithRouting`). */
  routing?: ArrayLike<number>;
}

/** A layer whose routing can be pinned to a fixed vector (kinds with `merge: "fixedRouting"`). */
export interface FixedRoutingLayer {
  /** Pin adapter `name`'s routing to `g` `[N]` for every token (undefined: use the router again). */
  setFixedRouting(name: string, g: ArrayLike<number> | undefined): void;
}

/** Holder of one adapter's parameters inside an {@link AdapterDict}. */
class ParamHolder extends Module {
  setParam(name: string, p: Param): void {
    this.addParam(name, p);
  }
}

/** Base class of the adapters that add a delta to the frozen base layer and can be merged into it. */
export abstract class DeltaAdapterLayer<S extends AdapterState = AdapterState, P = unknown> extends AdapterLayer<S, P> {
  private mergedState: { name: string; original: Linear; opts: MergeOptions } | undefined;

  /** Name of the adapter merged into the base weight, if any. */
  get mergedAdapter(): string | undefined {
    return this.mergedState?.name;
  }

  /** The merged adapter and the options it was merged with (fixed routing), if merged. */
  get merged(): { readonly name: string; readonly opts: MergeOptions } | undefined {
    return this.mergedState && { name: this.mergedState.name, opts: this.mergedState.opts };
  }

  /** Make `name` the adapter used by forward (undefined: none). Unmerges a different merged adapter. */
  override setActiveAdapter(name: string | undefined): void {
    if (this.mergedState && this.mergedState.name !== name) this.unmerge();
    super.setActiveAdapter(name);
  }

  /** While merged, forward is the (merged) base layer alone. */
  protected override effectiveAdapter(): S | undefined {
    return this.mergedState ? undefined : super.effectiveAdapter();
  }

  /** Add a fully built adapter state and register its tensors under PEFT names. */
  protected override addState(s: S): void {
    super.addState(s);
    this.registerState(s);
  }

  /** Register `s`'s tensors in the module tree (`lora_A.<name>.weight`). */
  private registerState(s: S): void {
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
  private unregisterState(name: string): void {
    for (const [childName, c] of this.children()) {
      if (!(c instanceof AdapterDict)) continue;
      const fresh = new AdapterDict();
      for (const [pn, p] of c.ownParams()) if (pn !== name) fresh.setParam(pn, p);
      for (const [cn, cc] of c.children()) if (cn !== name) fresh.setChild(cn, cc);
      this.replaceChild(childName, fresh);
    }
  }

  /** Remove adapter `name` (unmerged first if merged) and dispose its tensors. */
  override deleteAdapter(name: string): void {
    this.state(name); // throws for an unknown name before anything changes
    if (this.mergedState?.name === name) this.unmerge();
    this.unregisterState(name);
    super.deleteAdapter(name);
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
  merge(name = this.activeAdapter, opts: MergeOptions = {}): void {
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
   * the active adapter merged (with `opts`, by default those it is merged with) when `merge` is
   * set — and disposes every adapter tensor. The wrapper must not be used afterwards.
   */
  unload(merge: boolean, opts: MergeOptions = this.mergedState?.opts ?? {}): Linear {
    const active = this.activeAdapter;
    let out: Linear;
    if (merge && active !== undefined && this.hasAdapter(active)) {
      this.merge(active, opts);
      out = this.baseLayer;
      this.mergedState?.original.dispose();
    } else {
      this.unmerge();
      out = this.baseLayer;
    }
    this.mergedState = undefined;
    this.disposeStates();
    return out;
  }

  /** Dispose base layer (the original one if merged) and every adapter. */
  override dispose(): void {
    this.unmerge();
    super.dispose();
  }
}

/** `true` if `l` can fold its adapters into the base weight (full fine-tuning's are already there). */
export function isDeltaLayer(l: AdapterLayer): l is DeltaAdapterLayer {
  return l instanceof DeltaAdapterLayer;
}

function findChild(m: Module, name: string): Module | undefined {
  return m.children().find(([n]) => n === name)?.[1];
}
