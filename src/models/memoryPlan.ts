/**
 * The size policy: what a run needs, estimated from the model's config BEFORE anything is
 * loaded, and a check that refuses with one line naming the knobs instead of letting the
 * 32-bit wasm heap (4 GiB for every tensor) crash mid-step.
 *
 * Where bytes live:
 *  - wasm heap (float32 tfjs tensors): the frozen weights unless an off-heap store holds them
 *    (plus their transposed copies on the pure-wasm matmul path), the trainable tensors with
 *    their gradient, gradient sum and AdamW moments, the activations of a step, the loss and
 *    the KV cache of generation;
 *  - host memory: all of the heap (its pages are process memory) plus the off-heap weights
 *    in their file dtype, plus the Node process itself.
 *
 * Activations: what one decoder layer adds to a plain training step's peak is about
 * `a h + b i + c H T` float32 values per token (h hidden, i intermediate, H query heads, T the
 * sequence length: attention scores, which the fused native attention never keeps). There is
 * one set per path: the native path (the addon's fused attention, norms and SwiGLU) and the
 * pure-wasm path (tfjs ops). The native coefficients are fitted by bench/actmem-fit.ts (exact
 * live tensor bytes, counted at the backend's allocator, one MoR r 8, N 8 step on gate/up/down,
 * the difference between 1- and 2-layer models of five shapes up to hidden 1024); `hidden` is
 * the fit's 23.3 raised to 24.5, which covers LLaMA-2-7B's full-width keys and values (measured
 * 419 MB per layer at 1 x 512, planned 424; the fitted shapes have grouped-query keys and
 * values). The pure-wasm ones are the older fit (before the fused kernels), which over-estimates
 * that path's measured layers by about 2x. The peak is about three times what the tape holds,
 * because tfjs keeps a backward's intermediate gradients until it ends.
 *
 * A checkpointed layer keeps its input (and, in the backward, its gradient); the checkpointed
 * layers run again one at a time, which peaks at about {@link CHECKPOINT_RECOMPUTE_LAYERS}
 * layers' peak. `gradientCheckpointing` may checkpoint only the last n layers: the others keep
 * their activations, so `'auto'` picks the smallest n that fits (each checkpointed layer costs
 * one more forward of it). The backward reaches the last layers first, while the plain layers'
 * tapes are held (measured at about a third of their peak; the plan takes half:
 * {@link TAPE_SHARE_OF_PEAK}) but none of their gradients yet: the step peaks at the larger of
 * that moment and the plain layers' backward.
 *
 * The loss peaked at 9 float32 values per logit with the full `[tokens, vocab]` logits, 5.5 per
 * logit of one chunk when chunked (measured before the fused cross-entropy: an over-estimate on
 * the native path).
 * How the plan compares with the heap measured after a real step: README, "Memory".
 */
import * as os from 'node:os';
import { UserError } from '../errors.ts';
import type { LlamaConfig } from './llama/config.ts';
import type { AdapterConfig } from '../adapters/config.ts';
import { adapterKind } from '../adapters/registry.ts';
import { formulaTrainableParameters, llamaLinearShapes, llamaParameterCount } from '../experiment/budget.ts';

/** The wasm heap's hard ceiling (emscripten `getHeapMax`: 4 GiB minus one 64 KiB page). */
export const WASM_HEAP_MAX_BYTES = 4294901760;

/**
 * Share of the heap a plan may fill: the allocator fragments (the heap grew up to ~15 % past
 * the peak of live tensor bytes in the measurements), and the module's own data and stack sit
 * there too.
 */
export const WASM_HEAP_USABLE_FRACTION = 0.85;

/** Memory of the Node process outside the heap and the weights (code, V8 heap, buffers). */
export const PROCESS_BASE_BYTES = 512 * 2 ** 20;

/** One layer's share of a plain step's peak, per token (float32 values): `hidden h + intermediate i + scoresPerHead H T`. */
export interface ActivationCoefficients {
  hidden: number;
  intermediate: number;
  scoresPerHead: number;
}

/** Per path; see the module comment (native: bench/actmem-fit.ts, hidden raised from 23.3 for full-width keys and values). */
export const ACTIVATION_COEFFICIENTS: { native: ActivationCoefficients; wasm: ActivationCoefficients } = {
  native: { hidden: 24.5, intermediate: 9.7, scoresPerHead: 0 },
  wasm: { hidden: 56, intermediate: 20, scoresPerHead: 6 },
};

/** Peak of the checkpointed layers' recompute in the backward, in layers' peaks (measured; see the module comment). */
export const CHECKPOINT_RECOMPUTE_LAYERS = 1.6;

/** What the tape holds of a plain layer at the end of the forward, as a share of its peak (measured 0.31-0.34 native, 0.34-0.46 pure wasm). */
export const TAPE_SHARE_OF_PEAK = 0.5;

/** Bytes per trainable parameter: value, gradient, accumulated gradient, AdamW m and v (float32). */
export const TRAINABLE_BYTES_PER_PARAM = 20;

/** What a run will do, as far as memory is concerned. */
export interface RunShape {
  model: LlamaConfig;
  /** Sequences per micro-batch (training) or per forward. */
  batchSize: number;
  /** Tokens per sequence. */
  maxLength: number;
  /** Trainable parameters (0: inference only); see {@link adapterTrainableParams}. */
  trainableParams: number;
  /** Checkpoint every decoder layer (true), none (false), or the last n. */
  gradientCheckpointing: boolean | number;
  /** Rows of the head per loss chunk; 0: the full `[tokens, vocab]` logits. */
  lossChunkRows: number;
  /** Frozen weights held by the native store outside the wasm heap. */
  weightsOffHeap: boolean;
  /** Bytes per value of the checkpoint's dtype (bf16/f16 2, f32 4): what the off-heap store holds. */
  fileDtypeBytes: number;
  /** The native addon's fused layer kernels run (attention, norms, SwiGLU): the native coefficients. Default false (the pure-wasm ones, larger). */
  fusedKernels?: boolean;
  /** Pure-wasm matmul path: a transposed copy of each frozen projection is kept on the heap. */
  transposedWeights?: boolean;
  /** Generation: the KV cache for this many sequences of this many tokens (prompt + new). */
  kvCache?: { batch: number; tokens: number };
}

/** Estimated bytes by where they live. */
export interface MemoryPlan {
  shape: RunShape;
  heap: {
    weights: number;
    trainable: number;
    activations: number;
    loss: number;
    kvCache: number;
    total: number;
  };
  host: { offHeapWeights: number; total: number };
}

/** Trainable parameters of an adapter on a model, by the closed formulas (per-layer rank patterns: base rank). */
export function adapterTrainableParams(model: LlamaConfig, adapter: AdapterConfig): number {
  // Only low-rank kinds have rank / alpha patterns.
  const plain = adapterKind(adapter.kind).lowRank ? ({ ...adapter, rankPattern: {}, alphaPattern: {} } as AdapterConfig) : adapter;
  return formulaTrainableParameters(model, plain);
}

/** How many decoder layers a shape checkpoints. */
export function checkpointedLayers(s: Pick<RunShape, 'model' | 'gradientCheckpointing'>): number {
  const layers = s.model.numHiddenLayers;
  const g = s.gradientCheckpointing;
  return g === true ? layers : g === false ? 0 : Math.min(layers, g);
}

/** Activation bytes of a training step (float32), without the loss; rounded up to whole bytes. */
function activationBytes(s: RunShape): number {
  const { hiddenSize: h, intermediateSize: i, numAttentionHeads: heads, numHiddenLayers: layers } = s.model;
  const tokens = s.batchSize * s.maxLength;
  const c = s.fusedKernels ? ACTIVATION_COEFFICIENTS.native : ACTIVATION_COEFFICIENTS.wasm;
  const layerPeak = 4 * tokens * (c.hidden * h + c.intermediate * i + c.scoresPerHead * heads * s.maxLength);
  if (s.trainableParams === 0) return Math.ceil(layerPeak); // a forward: about one layer's activations at a time
  const k = checkpointedLayers(s);
  const plain = layers - k;
  if (k === 0) return Math.ceil(plain * layerPeak);
  const inputs = 4 * tokens * h; // a checkpointed layer's input, and in the backward its gradient
  const recomputing = plain * TAPE_SHARE_OF_PEAK * layerPeak + CHECKPOINT_RECOMPUTE_LAYERS * layerPeak;
  return Math.ceil(2 * k * inputs + Math.max(plain * layerPeak, recomputing));
}

/** Peak bytes of the loss (float32). */
function lossBytes(s: RunShape): number {
  const v = s.model.vocabSize;
  const tokens = s.batchSize * s.maxLength;
  if (s.lossChunkRows > 0) return 4 * 5.5 * Math.min(s.lossChunkRows, tokens) * v + 4 * 3 * tokens * s.model.hiddenSize;
  return 4 * 9 * tokens * v;
}

/** Estimate what `shape` needs (a pure function of its fields). */
export function planRun(shape: RunShape): MemoryPlan {
  const m = shape.model;
  const params = llamaParameterCount(m);
  // Every projection, the head included (tied or not), gets a transposed copy on the pure-wasm path.
  const projections = llamaLinearShapes(m).reduce((n, l) => n + l.dIn * l.dOut, 0);
  const heapWeights = shape.weightsOffHeap ? 0 : 4 * params + (shape.transposedWeights ? 4 * projections : 0);
  const offHeapWeights = shape.weightsOffHeap ? shape.fileDtypeBytes * params : 0;
  const kv = shape.kvCache ? 4 * 2 * m.numHiddenLayers * m.numKeyValueHeads * m.headDim * shape.kvCache.batch * shape.kvCache.tokens : 0;
  const heap = {
    weights: heapWeights,
    trainable: TRAINABLE_BYTES_PER_PARAM * shape.trainableParams,
    activations: activationBytes(shape),
    loss: shape.trainableParams > 0 || shape.lossChunkRows === 0 ? lossBytes(shape) : 0,
    kvCache: kv,
    total: 0,
  };
  heap.total = heap.weights + heap.trainable + heap.activations + heap.loss + heap.kvCache;
  return { shape, heap, host: { offHeapWeights, total: heap.total + offHeapWeights + PROCESS_BASE_BYTES } };
}

/** Limits a plan is checked against. */
export interface MemoryLimits {
  /** Usable wasm heap bytes. Default {@link WASM_HEAP_MAX_BYTES} x {@link WASM_HEAP_USABLE_FRACTION}. */
  heapBytes?: number;
  /** Host memory. Default `os.totalmem()`. */
  hostBytes?: number;
}

/** True when the plan fits both limits. */
export function runFits(plan: MemoryPlan, limits: MemoryLimits = {}): boolean {
  const heap = limits.heapBytes ?? WASM_HEAP_MAX_BYTES * WASM_HEAP_USABLE_FRACTION;
  const host = limits.hostBytes ?? os.totalmem();
  return plan.heap.total <= heap && plan.host.total <= host;
}

const gib = (b: number): string => (b / 2 ** 30).toFixed(1);

/**
 * Throw ONE UserError line when the plan does not fit: which memory, how much, the main
 * consumers, and the knobs that would help (batch size, max length, gradient checkpointing,
 * the native addon's off-heap weight store).
 */
export function checkRunFits(plan: MemoryPlan, limits: MemoryLimits = {}): void {
  const heapLimit = limits.heapBytes ?? WASM_HEAP_MAX_BYTES * WASM_HEAP_USABLE_FRACTION;
  const hostLimit = limits.hostBytes ?? os.totalmem();
  const s = plan.shape;
  const h = plan.heap;
  const knobs = [`a smaller batchSize (${s.batchSize}) or maxLength (${s.maxLength})`];
  if (s.trainableParams > 0 && checkpointedLayers(s) < s.model.numHiddenLayers) knobs.push('gradientCheckpointing: true');
  if (s.lossChunkRows === 0) knobs.push('a lossChunkSize above 0');
  if (!s.weightsOffHeap) knobs.push('the native addon (npm run setup), which keeps the frozen weights off the heap');
  if (h.total > heapLimit) {
    throw new UserError(
      `this run needs about ${gib(h.total)} GiB of tensor memory but the wasm heap holds ${gib(heapLimit)} GiB ` +
        `(weights ${gib(h.weights)}, activations ${gib(h.activations)}, loss ${gib(h.loss)}, trainable + optimizer ${gib(h.trainable)}` +
        `${h.kvCache ? `, KV cache ${gib(h.kvCache)}` : ''} GiB at batch ${s.batchSize} x ${s.maxLength} tokens); try ${knobs.join(', ')}`,
    );
  }
  if (plan.host.total > hostLimit) {
    throw new UserError(
      `this run needs about ${gib(plan.host.total)} GiB of memory but the machine has ${gib(hostLimit)} GiB ` +
        `(off-heap weights ${gib(plan.host.offHeapWeights)}, wasm heap ${gib(h.total)} GiB); try ${knobs.slice(0, -1).join(', ') || 'a smaller model'}`,
    );
  }
}

/**
 * `gradientCheckpointing: 'auto'`: false when the run fits without it; else the fewest (last)
 * layers to checkpoint for it to fit (each costs one more forward of that layer in the
 * backward); true (every layer) when even that does not fit, so that {@link checkRunFits}
 * names the other knobs.
 */
export function autoGradientCheckpointing(shape: Omit<RunShape, 'gradientCheckpointing'>, limits: MemoryLimits = {}): boolean | number {
  if (shape.trainableParams === 0) return false;
  const fits = (g: boolean | number): boolean => runFits(planRun({ ...shape, gradientCheckpointing: g }), limits);
  if (fits(false)) return false;
  const layers = shape.model.numHiddenLayers;
  for (let n = 1; n < layers; n++) if (fits(n)) return n;
  return true;
}
