/**
 * Trainable-parameter budgets computed from the formulas of docs/mor.md, independently
 * of the adapter code: the experiment report prints these and asserts they equal what
 * `PeftModel.countParameters()` counts on the real model. Each kind's per-layer formula is
 * `paramsPerLayer` of its registry definition (written from the docs table, not from the
 * tensors the layer creates); this file sums it over the layers a config targets.
 *
 * {@link matchRank} picks the rank of one method that brings its count closest to another's:
 * how the comparison's budgets are matched.
 */
import { UserError } from '../errors.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import type { LayerShape } from '../adapters/kind.ts';
import type { LlamaConfig } from '../models/llama/config.ts';

/** One linear layer of a LLaMA-family model, as the adapters see it. */
export interface LinearShape extends LayerShape {
  /** Dotted module path (`model.layers.0.mlp.up_proj`). */
  path: string;
}

/** Every linear layer of a LLaMA-family model (HF names), `lm_head` last. */
export function llamaLinearShapes(c: LlamaConfig): LinearShape[] {
  const q = c.numAttentionHeads * c.headDim;
  const kv = c.numKeyValueHeads * c.headDim;
  const out: LinearShape[] = [];
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    out.push(
      { path: `${p}.self_attn.q_proj`, dIn: c.hiddenSize, dOut: q, hasBias: c.qkvBias },
      { path: `${p}.self_attn.k_proj`, dIn: c.hiddenSize, dOut: kv, hasBias: c.qkvBias },
      { path: `${p}.self_attn.v_proj`, dIn: c.hiddenSize, dOut: kv, hasBias: c.qkvBias },
      { path: `${p}.self_attn.o_proj`, dIn: q, dOut: c.hiddenSize, hasBias: c.oBias },
      { path: `${p}.mlp.gate_proj`, dIn: c.hiddenSize, dOut: c.intermediateSize, hasBias: c.mlpBias },
      { path: `${p}.mlp.up_proj`, dIn: c.hiddenSize, dOut: c.intermediateSize, hasBias: c.mlpBias },
      { path: `${p}.mlp.down_proj`, dIn: c.intermediateSize, dOut: c.hiddenSize, hasBias: c.mlpBias },
    );
  }
  out.push({ path: 'lm_head', dIn: c.hiddenSize, dOut: c.vocabSize, hasBias: false });
  return out;
}

/** Parameters of the base model (embedding, tied or separate head, norms, linears). */
export function llamaParameterCount(c: LlamaConfig): number {
  let n = c.vocabSize * c.hiddenSize; // embed_tokens
  if (!c.tieWordEmbeddings) n += c.vocabSize * c.hiddenSize; // lm_head
  n += c.hiddenSize; // final norm
  n += c.numHiddenLayers * 2 * c.hiddenSize; // two RMSNorms per layer
  for (const l of llamaLinearShapes(c)) if (l.path !== 'lm_head') n += l.dIn * l.dOut + (l.hasBias ? l.dOut : 0);
  return n;
}

/** The layers `config` adapts (suffix lists, full-match regexes, `all-linear`, `layersToTransform`). */
export function targetedLayers(model: LlamaConfig, config: AdapterConfig): LinearShape[] {
  // Per-layer ranks are outside the closed formulas (the report would have to sum per layer).
  if ('rankPattern' in config && Object.keys(config.rankPattern).length > 0) {
    throw new UserError('parameter formulas: rankPattern is not supported in experiments');
  }
  const targets = config.targetModules ?? adapterKind(config.kind).defaultTargets;
  const layersWanted = config.layersToTransform === undefined ? undefined : new Set([config.layersToTransform].flat());
  const excl = config.excludeModules;
  return llamaLinearShapes(model).filter((l) => {
    const selected =
      targets === 'all-linear'
        ? l.path !== 'lm_head'
        : typeof targets === 'string'
          ? new RegExp(`^(?:${targets})$`).test(l.path)
          : targets.some((t) => l.path === t || l.path.endsWith(`.${t}`));
    if (!selected) return false;
    if (excl !== undefined) {
      const ex = typeof excl === 'string' ? new RegExp(`^(?:${excl})$`).test(l.path) : excl.some((t) => l.path === t || l.path.endsWith(`.${t}`));
      if (ex) return false;
    }
    if (layersWanted) {
      const m = /\.layers\.(\d+)\./.exec(l.path);
      if (!m || !layersWanted.has(Number(m[1]))) return false;
    }
    return true;
  });
}

/** Trainable parameters of one adapted layer, by the docs/mor.md formula for `config.kind`. */
export function layerFormula(config: AdapterConfig, l: LinearShape): number {
  return adapterKind(config.kind).paramsPerLayer(config, l);
}

/** A human-readable form of the formula used for `config` (for the report). */
export function formulaText(config: AdapterConfig): string {
  return adapterKind(config.kind).formulaText(config);
}

/** Trainable parameters of `config` on `model`, summed over the targeted layers (formulas only). */
export function formulaTrainableParameters(model: LlamaConfig, config: AdapterConfig): number {
  const layers = targetedLayers(model, config);
  if (layers.length === 0) throw new UserError(`parameter formulas: adapter ${config.kind} targets no layer of this model`);
  return layers.reduce((s, l) => s + layerFormula(config, l), 0);
}

/**
 * The rank `r` (per expert for MoELoRA) in `[1, maxRank]` whose formula count on `model` is
 * closest to `target` (ties: the smaller rank). Only low-rank kinds have a rank.
 */
export function matchRank(model: LlamaConfig, config: AdapterConfig, target: number, maxRank = 1024): { r: number; count: number } {
  if (!adapterKind(config.kind).lowRank) throw new UserError(`matchBudget: a "${config.kind}" adapter has no rank to choose`);
  let best = { r: 1, count: Number.POSITIVE_INFINITY };
  for (let r = 1; r <= maxRank; r++) {
    const count = formulaTrainableParameters(model, { ...config, r } as AdapterConfig);
    if (Math.abs(count - target) < Math.abs(best.count - target)) best = { r, count };
    if (count > target) break; // counts grow with r: nothing closer beyond
  }
  return best;
}
