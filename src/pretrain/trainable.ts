/**
 * Full training of a base model: every parameter becomes a trainable `tf.Variable` in place
 * (the module tree keeps its names, so `namedParameters()` still equals the checkpoint keys
 * and `savePretrained` writes the trained weights). A tied embedding is one tensor, so it
 * becomes one variable that the output head reads too.
 */
import { tf } from '../backend/tf.ts';
import type { Module } from '../nn/module.ts';
import { variableFrom } from '../backend/weightStore.ts';

/**
 * Replace every frozen parameter of `model` with a trainable variable holding the same
 * values (the frozen tensor is disposed). Returns all trainable parameters by dotted name.
 */
export function makeAllTrainable(model: Module): [string, tf.Variable][] {
  for (const [, m] of model.namedModules()) {
    for (const [name, p] of m.ownParams()) {
      if (p instanceof tf.Variable && p.trainable) continue;
      const v = variableFrom(p);
      m.replaceParam(name, v);
      p.dispose();
    }
  }
  return model.trainableParameters();
}
