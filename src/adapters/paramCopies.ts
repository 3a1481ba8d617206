/**
 * Per-adapter trainable copies of existing model parameters: PEFT's `modules_to_save` (e.g.
 * `lm_head` trained whole) and `bias: "all" | "lora_only"`. Each adapter owns a tf.Variable
 * copy of every such parameter; the active adapter's copies stand in the module tree (so the
 * model computes with them and counts them once); otherwise the frozen originals do.
 * Saved under the parameter's own path: `base_model.model.<module path>.<param>`.
 */
import { tf } from '../backend/tf.ts';
import type { Module, Param } from '../nn/module.ts';
import { frozenClone } from './layer.ts';
import { variableFrom } from '../backend/weightStore.ts';

interface Entry {
  /** Parameter path in the base model (`lm_head.weight`): the saved key after the prefix. */
  key: string;
  owner: Module;
  name: string;
  original: Param;
  copies: Map<string, tf.Variable>;
}

export class ParamCopies {
  private readonly entries = new Map<string, Entry>();
  private active: string | undefined;

  /** Give adapter `adapter` a trainable copy of parameter `name` of `owner` (path `key`). */
  add(adapter: string, key: string, owner: Module, name: string): void {
    let e = this.entries.get(key);
    if (!e) {
      e = { key, owner, name, original: owner.param(name), copies: new Map() };
      this.entries.set(key, e);
    }
    if (!e.copies.has(adapter)) e.copies.set(adapter, variableFrom(e.original));
  }

  /** Put adapter `adapter`'s copies in the tree (undefined: the originals). */
  activate(adapter: string | undefined): void {
    this.active = adapter;
    for (const e of this.entries.values()) e.owner.replaceParam(e.name, (adapter !== undefined && e.copies.get(adapter)) || e.original);
  }

  /** Adapter `adapter`'s copies keyed by parameter path. */
  tensors(adapter: string): Map<string, tf.Variable> {
    const m = new Map<string, tf.Variable>();
    for (const e of this.entries.values()) {
      const v = e.copies.get(adapter);
      if (v) m.set(e.key, v);
    }
    return m;
  }

  setTrainable(adapter: string, on: boolean): void {
    for (const v of this.tensors(adapter).values()) v.trainable = on;
  }

  /** Drop adapter `adapter`'s copies (disposed). */
  delete(adapter: string): void {
    for (const [k, e] of this.entries) {
      const v = e.copies.get(adapter);
      if (!v) continue;
      e.copies.delete(adapter);
      if (e.owner.param(e.name) === v) e.owner.replaceParam(e.name, e.original);
      v.dispose();
      if (e.copies.size === 0) this.entries.delete(k);
    }
    if (this.active === adapter) this.active = undefined;
  }

  /**
   * Make `adapter`'s copies the model's frozen parameters for good (PEFT `merge_and_unload`
   * keeps the trained modules_to_save); without an adapter, restore the originals.
   */
  bake(adapter: string | undefined): void {
    for (const e of this.entries.values()) {
      const v = adapter !== undefined ? e.copies.get(adapter) : undefined;
      if (v) {
        e.owner.replaceParam(e.name, frozenClone(v));
        e.original.dispose();
      } else {
        e.owner.replaceParam(e.name, e.original);
      }
      for (const c of e.copies.values()) c.dispose();
    }
    this.entries.clear();
  }

  /** Dispose every copy (the originals belong to the model). */
  dispose(): void {
    this.activate(undefined);
    for (const e of this.entries.values()) for (const c of e.copies.values()) c.dispose();
    this.entries.clear();
  }
}
