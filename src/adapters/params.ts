/**
 * Parameter counting, as PEFT's `get_nb_trainable_parameters` / `print_trainable_parameters`:
 * every distinct tensor of the tree counted once (tied weights once), trainable = the
 * tf.Variables with `trainable` set.
 */
import { tf } from '../backend/tf.ts';
import type { Module, Param } from '../nn/module.ts';

/** Parameter counts of a model. */
export interface ParamCounts {
  /** Elements of trainable tensors. */
  trainable: number;
  /** Elements of all tensors (base model + adapters). */
  all: number;
  /** `100 * trainable / all`. */
  trainablePercent: number;
}

/** Count the parameters of `model` (each tensor once). */
export function countParameters(model: Module): ParamCounts {
  const seen = new Set<Param>();
  let all = 0;
  let trainable = 0;
  for (const [, p] of model.namedParameters()) {
    if (seen.has(p)) continue;
    seen.add(p);
    all += p.size;
    if (p instanceof tf.Variable && p.trainable) trainable += p.size;
  }
  return { trainable, all, trainablePercent: all === 0 ? 0 : (100 * trainable) / all };
}

/** `trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330` (PEFT's line). */
export function formatTrainableParameters(c: ParamCounts): string {
  const fmt = (n: number): string => n.toLocaleString('en-US');
  return `trainable params: ${fmt(c.trainable)} || all params: ${fmt(c.all)} || trainable%: ${c.trainablePercent.toFixed(4)}`;
}
