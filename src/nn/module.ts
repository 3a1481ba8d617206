/**
 * A minimal module tree, like PyTorch's nn.Module: children and parameters are registered
 * under their Hugging Face names (`self_attn`, `q_proj`, `weight`), so the dotted path of
 * a parameter equals its checkpoint key and adapters find layers by the names PEFT uses.
 * Code accesses children through typed camelCase getters defined by each subclass.
 */
import { tf } from '../backend/tf.ts';
import type { StoredWeight } from '../backend/weightStore.ts';
import { pushAll } from '../util/array.ts';

/**
 * A parameter slot: frozen tensors are plain tensors (or, for big models, weights kept in the
 * native store outside the wasm heap); trainable ones are tf.Variables.
 */
export type Param = tf.Tensor | tf.Variable | StoredWeight;

export abstract class Module {
  private readonly childMap = new Map<string, Module>();
  private readonly paramMap = new Map<string, Param>();

  /** Register (or replace) a child module under its checkpoint name. */
  protected addChild<M extends Module>(name: string, child: M): M {
    this.childMap.set(name, child);
    return child;
  }

  /** Register (or replace) a parameter; the old tensor is NOT disposed (caller owns it). */
  protected addParam<T extends Param>(name: string, value: T): T {
    this.paramMap.set(name, value);
    return value;
  }

  /** The child registered under `name`; throws if absent. */
  child<M extends Module = Module>(name: string): M {
    const c = this.childMap.get(name);
    if (!c) throw new Error(`${this.constructor.name} has no child "${name}"`);
    return c as M;
  }

  /** The parameter registered under `name`; throws if absent. */
  param<T extends Param = tf.Tensor>(name: string): T {
    const p = this.paramMap.get(name);
    if (!p) throw new Error(`${this.constructor.name} has no parameter "${name}"`);
    return p as T;
  }

  hasParam(name: string): boolean {
    return this.paramMap.has(name);
  }

  /** Replace a direct child (used by adapter injection). Returns the old child. */
  replaceChild(name: string, child: Module): Module {
    const old = this.child(name);
    this.childMap.set(name, child);
    return old;
  }

  /** Replace a parameter tensor (e.g. to make it trainable). Returns the old tensor. */
  replaceParam(name: string, value: Param): Param {
    const old = this.param(name);
    this.paramMap.set(name, value);
    return old;
  }

  /** Direct children, in registration order. */
  children(): [string, Module][] {
    return [...this.childMap.entries()];
  }

  /** Own parameters (not children's), in registration order. */
  ownParams(): [string, Param][] {
    return [...this.paramMap.entries()];
  }

  /** All modules below (and including) this one, with dotted paths. Root has path `""`. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, c] of this.childMap) pushAll(out, c.namedModules(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** All parameters below this module, keyed by dotted path (= checkpoint key). */
  namedParameters(prefix = ''): [string, Param][] {
    const out: [string, Param][] = [];
    for (const [name, p] of this.paramMap) out.push([prefix ? `${prefix}.${name}` : name, p]);
    for (const [name, c] of this.childMap) pushAll(out, c.namedParameters(prefix ? `${prefix}.${name}` : name));
    return out;
  }

  /** The module at a dotted path (`model.layers.0.mlp`). */
  getModule(path: string): Module {
    if (path === '') return this;
    let m: Module = this;
    for (const part of path.split('.')) m = m.child(part);
    return m;
  }

  /** Trainable parameters: those held as tf.Variable with `trainable` set. */
  trainableParameters(prefix = ''): [string, tf.Variable][] {
    return this.namedParameters(prefix).filter(
      (e): e is [string, tf.Variable] => e[1] instanceof tf.Variable && e[1].trainable,
    );
  }

  /**
   * Free tensors a module derives from its parameters and keeps between calls (none by default;
   * a frozen projection's kept `Wᵀ` on the pure-wasm path). {@link dispose} calls it on the tree.
   */
  releaseCaches(): void {}

  /** Dispose every parameter tensor in the tree, and every module's kept derived tensors. */
  dispose(): void {
    for (const [, m] of this.namedModules()) m.releaseCaches();
    for (const [, p] of this.namedParameters()) p.dispose();
  }
}
