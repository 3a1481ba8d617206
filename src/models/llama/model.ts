/**
 * `LlamaForCausalLM`: the decoder stack (`model`) and the output head (`lm_head`), with the
 * Hugging Face module tree, so `namedParameters()` keys equal checkpoint keys
 * (`model.layers.0.self_attn.q_proj.weight`). Also serves Mistral and Qwen2 checkpoints.
 */
import { tf } from '../../backend/tf.ts';
import { Module } from '../../nn/module.ts';
import { Linear, type LinearLike } from '../../nn/linear.ts';
import type { ForwardContext } from '../../nn/context.ts';
import type { LlamaConfig } from './config.ts';
import { Embedding, gatherRows, TiedLinear } from './embedding.ts';
import { LlamaDecoderLayer, ModuleList } from './block.ts';
import { RMSNorm } from './rmsnorm.ts';
import { RotaryEmbedding } from './rope.ts';
import { buildLayerMasks, positionIdsFromMask } from './mask.ts';
import { causalLmLoss, causalLmLossSum, crossEntropyRows, labelledPositions, maskUnpredictable } from './loss.ts';
import { FrozenLinear } from './frozenLinear.ts';
import type { KVCache } from './kvCache.ts';
import { checkpointed } from '../../nn/checkpoint.ts';
import { chunkedLossSum, defaultLossChunkRows } from './chunkedLoss.ts';
import { buildLinear, type WeightSource } from './weights.ts';
import { savePretrained, type SaveOptions } from '../save.ts';
import type { FrozenWeight } from '../../backend/weightStore.ts';

/** Options of {@link LlamaForCausalLM.forward}. */
export interface ForwardOptions {
  /** `[B, past + T]` int32, 1 for tokens and 0 for padding (left or right). */
  attentionMask?: tf.Tensor2D;
  /** `[B, T]` int32; default: from the attention mask (padding-invariant) or `past..past+T-1`. */
  positionIds?: tf.Tensor2D;
  /** Passed to every linear layer (adapters report aux losses / routing there). */
  ctx?: ForwardContext;
  /** KV cache: this call's keys/values are appended; `past` = its length before the call. */
  cache?: KVCache;
  /** Compute logits for the last `n` positions only (HF `logits_to_keep`; generation prefill). */
  logitsToKeep?: number;
  /**
   * Gradient checkpointing per decoder layer (see src/nn/checkpoint.ts): under a gradient
   * tape only each layer's input is kept and the layer runs again in the backward. Same
   * values and gradients; less memory, one more forward of the layers. `true`: every layer; a
   * number n: the last n layers only (the others keep their activations: less recompute, more
   * memory; the size policy picks n with `'auto'`). The last ones, because the backward reaches
   * them first, while it holds few gradients: their recompute then adds little to the peak.
   * Ignored with a `cache`. Default false.
   */
  gradientCheckpointing?: boolean | number;
}

/** Options of {@link LlamaForCausalLM.loss}. */
export interface LossOptions extends Omit<ForwardOptions, 'cache' | 'logitsToKeep'> {
  /** `mean` over counted tokens (default) or `sum` (for accumulation across micro-batches). */
  reduction?: 'mean' | 'sum';
  /**
   * Rows of the output head per chunk of the loss (see chunkedLoss.ts): the `[tokens, vocab]`
   * logits never exist at once. Applies when the head is a plain or tied projection (an
   * adapter on `lm_head` takes the full-logits path). 0 turns chunking off. Default:
   * {@link defaultLossChunkRows} of the vocabulary.
   */
  lossChunkSize?: number;
}

/** The decoder stack (`LlamaModel`): embeddings, layers, final norm. */
export class LlamaModel extends Module {
  constructor(config: LlamaConfig, get: WeightSource) {
    super();
    const { vocabSize: v, hiddenSize: c, numHiddenLayers: n } = config;
    this.addChild('embed_tokens', new Embedding(get('model.embed_tokens.weight', [v, c], 'embedding') as FrozenWeight));
    const layers: LlamaDecoderLayer[] = [];
    for (let i = 0; i < n; i++) layers.push(new LlamaDecoderLayer(config, i, `model.layers.${i}`, get));
    this.addChild('layers', new ModuleList(layers));
    this.addChild('norm', new RMSNorm(get('model.norm.weight', [c], 'norm') as tf.Tensor1D, config.rmsNormEps));
  }

  get embedTokens(): Embedding { return this.child<Embedding>('embed_tokens'); }
  get layers(): ModuleList<LlamaDecoderLayer> { return this.child<ModuleList<LlamaDecoderLayer>>('layers'); }
  get norm(): RMSNorm { return this.child<RMSNorm>('norm'); }
}

export class LlamaForCausalLM extends Module {
  readonly config: LlamaConfig;
  private readonly rotary: RotaryEmbedding;

  /**
   * Build the module tree, taking every tensor from `get` (HF key, shape). Use
   * `loadModel(dir)` or `createRandomModel(config, seed)` rather than calling this directly.
   */
  constructor(config: LlamaConfig, get: WeightSource) {
    super();
    this.config = config;
    this.rotary = new RotaryEmbedding(config);
    const model = this.addChild('model', new LlamaModel(config, get));
    this.addChild(
      'lm_head',
      config.tieWordEmbeddings
        ? new TiedLinear(model.embedTokens)
        : buildLinear(get, 'lm_head', config.vocabSize, config.hiddenSize, false),
    );
  }

  get model(): LlamaModel { return this.child<LlamaModel>('model'); }
  get lmHead(): LinearLike { return this.child<LinearLike>('lm_head'); }

  /**
   * Logits `[B, T, vocab]` for int32 ids `[B, T]`. Aux losses that adapters push to
   * `opts.ctx.auxLosses` during this call survive it (the caller disposes them).
   */
  forward(inputIds: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const aux0 = opts.ctx?.auxLosses.length ?? 0;
    const out = tf.tidy(() => [this.forwardInner(inputIds, opts), ...(opts.ctx?.auxLosses.slice(aux0) ?? [])]);
    return out[0] as tf.Tensor3D;
  }

  private forwardInner(inputIds: tf.Tensor2D, opts: ForwardOptions): tf.Tensor3D {
    const { hidden, ctx } = this.hiddenStates(inputIds, opts);
    const [b, t, c] = hidden.shape;
    const keep = opts.logitsToKeep;
    const h = keep !== undefined && keep > 0 && keep < t ? hidden.slice([0, t - keep, 0], [b, keep, c]) : hidden; // [B, keep, hidden]
    return this.lmHead.forward(this.model.norm.forward(h), ctx) as tf.Tensor3D;
  }

  /** Hidden states `[B, T, hidden]` of the last decoder layer (before the final norm), and the context the layers saw. */
  private hiddenStates(inputIds: tf.Tensor2D, opts: ForwardOptions): { hidden: tf.Tensor3D; ctx?: ForwardContext } {
    if (inputIds.rank !== 2) throw new Error(`inputIds must be [B, T], got [${inputIds.shape}]`);
    if (inputIds.dtype !== 'int32') throw new Error(`inputIds must be int32, got ${inputIds.dtype}`);
    const [b, t] = inputIds.shape;
    const past = opts.cache?.seqLen ?? 0;
    const am = opts.attentionMask;
    if (am && (am.shape[0] !== b || am.shape[1] !== past + t)) {
      throw new Error(`attentionMask must be [${b}, ${past + t}] (past ${past} + ${t} new), got [${am.shape}]`);
    }
    if (opts.positionIds && (opts.positionIds.shape[0] !== b || opts.positionIds.shape[1] !== t)) {
      throw new Error(`positionIds must be [${b}, ${t}], got [${opts.positionIds.shape}]`);
    }
    const positionIds = opts.positionIds ?? positionIdsFromMask(am, b, t, past);
    const { cos, sin } = this.rotary.cosSin(positionIds);
    // One mask per layer type (full / sliding), over the keys the cache still holds for it.
    const cache = opts.cache;
    const masks = buildLayerMasks(this.config, am, b, t, past, cache && ((l) => cache.dropped(l)));
    let ctx = opts.ctx;
    if (ctx && !ctx.tokenMask && am) ctx = { ...ctx, tokenMask: am.slice([0, past], [b, t]).toFloat().reshape([b * t]) as tf.Tensor1D };
    const inp = { cos, sin, ctx, cache };
    let h = this.model.embedTokens.forward(inputIds);
    const layers = this.model.layers;
    const ckpt = opts.gradientCheckpointing;
    const checkpointedLayers = cache ? 0 : ckpt === true ? layers.length : typeof ckpt === 'number' ? ckpt : 0;
    for (let i = 0; i < layers.length; i++) {
      const layer = layers.at(i);
      const layerInp = { ...inp, mask: masks[this.config.layerTypes[i]] };
      const next = i >= layers.length - checkpointedLayers ? checkpointed(layer, h, layerInp) : layer.forward(h, layerInp);
      h.dispose();
      h = next;
    }
    return { hidden: h as tf.Tensor3D, ctx };
  }

  /**
   * Causal-LM loss: logits at t predict `labels[t + 1]` (HF shift inside); labels `-100` are
   * ignored; mean over counted tokens (or their sum with `reduction: 'sum'`). With an attention
   * mask, a label predicted from a padding position (the first token after left padding) is
   * ignored too: padding logits are undefined (HF counts them; they are garbage there).
   *
   * When the output head is a plain or tied projection, the final norm and the head run on
   * the labelled positions only (rows picked by `gatherRows`, whose gradient is a scatter),
   * over chunks of `lossChunkSize` rows (chunkedLoss.ts): the same loss, without the
   * `[B, T, vocab]` logits. With chunking off, the picked rows go through the head at once
   * when at most a quarter of the positions carry a label, else the full logits are formed.
   */
  loss(inputIds: tf.Tensor2D, labels: tf.Tensor2D, opts: LossOptions = {}): tf.Scalar {
    const aux0 = opts.ctx?.auxLosses.length ?? 0;
    const out = tf.tidy(() => {
      const lb = opts.attentionMask ? maskUnpredictable(labels, opts.attentionMask) : labels;
      const [b, t] = lb.shape;
      const head = this.lmHead;
      const plainHead = head instanceof TiedLinear || head.constructor === FrozenLinear;
      const chunkRows = opts.lossChunkSize ?? defaultLossChunkRows(this.config.vocabSize);
      const chunked = chunkRows > 0 && (head instanceof TiedLinear || head instanceof Linear);
      const positions = plainHead || chunked ? labelledPositions(lb.dataSync() as Int32Array, b, t) : undefined;
      let l: tf.Scalar;
      if (positions && positions.rows.length > 0 && (chunked || positions.rows.length * 4 <= b * t)) {
        const { hidden, ctx } = this.hiddenStates(inputIds, opts);
        const k = positions.rows.length;
        const picked = gatherRows(hidden.reshape([b * t, hidden.shape[2]]) as tf.Tensor2D, tf.tensor1d(positions.rows, 'int32')); // [K, hidden]
        let sum: tf.Scalar;
        if (chunked) {
          sum = chunkedLossSum(picked, positions.targets, this.model.norm, head, chunkRows);
        } else {
          const logits = head.forward(this.model.norm.forward(picked), ctx) as tf.Tensor2D; // [K, vocab]
          sum = tf.sum(crossEntropyRows(logits, tf.tensor1d(positions.targets, 'int32')));
        }
        l = opts.reduction === 'sum' ? sum : (tf.div(sum, k) as tf.Scalar);
      } else {
        const logits = this.forwardInner(inputIds, opts);
        l = opts.reduction === 'sum' ? causalLmLossSum(logits, lb).sum : causalLmLoss(logits, lb);
      }
      return [l, ...(opts.ctx?.auxLosses.slice(aux0) ?? [])];
    });
    return out[0] as tf.Scalar;
  }

  /** Write `config.json` + `model.safetensors` or shards (HF layout) to `dir`; returns the files (src/models/save.ts). */
  savePretrained(dir: string, opts: SaveOptions = {}): Promise<string[]> {
    return savePretrained(this, dir, opts);
  }

  /** Total number of parameter elements (a tied embedding is counted once). */
  numParameters(): number {
    return this.namedParameters().reduce((n, [, p]) => n + p.size, 0);
  }
}
