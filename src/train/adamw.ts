/**
 * AdamW with decoupled weight decay, following PyTorch's `torch.optim.AdamW` exactly:
 *
 * ```
 * p  <- p * (1 - lr * wd)                      (decoupled decay, skipped for noDecay params)
 * m  <- b1 m + (1 - b1) g
 * v  <- b2 v + (1 - b2) g^2
 * p  <- p - (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * ```
 *
 * One fused update per parameter inside `tf.tidy` (with the native addon: one in-place pass for
 * all of them); bias corrections are computed on the host in float64. The state (step, m, v)
 * exports to host arrays and imports back bit-exactly, for checkpoints.
 */
import { tf } from '../backend/tf.ts';
import { adamwInPlace, nativeOptimizerActive } from '../backend/optimizerKernels.ts';

/** Host copy of one optimizer moment (float32, row-major). */
export interface MomentArray {
  shape: number[];
  data: Float32Array;
}

/** Serialisable optimizer state: the step count and both moments per parameter name. */
export interface AdamWState {
  /** Number of updates applied so far (PyTorch's `state['step']`). */
  step: number;
  m: Map<string, MomentArray>;
  v: Map<string, MomentArray>;
}

/** Hyper-parameters of {@link AdamW}. The learning rate is given per step (from the schedule). */
export interface AdamWOptions {
  /** First-moment decay. Default 0.9. */
  beta1?: number;
  /** Second-moment decay. Default 0.999. */
  beta2?: number;
  /** Denominator epsilon. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay coefficient. Default 0.01 (PyTorch's default). */
  weightDecay?: number;
  /**
   * Which parameters get no weight decay. Default {@link defaultNoDecay}: 1-D tensors,
   * biases, norms, MoR omegas and DoRA magnitudes.
   */
  noDecay?: (name: string, shape: readonly number[]) => boolean;
}

/**
 * The default no-decay rule, like the usual "no decay on biases and LayerNorm weights" recipe:
 * tensors of rank <= 1, names ending in `.bias` or `bias`, and names containing `norm`,
 * `omega` or `magnitude` (case-insensitive).
 */
export function defaultNoDecay(name: string, shape: readonly number[]): boolean {
  if (shape.length <= 1) return true;
  const n = name.toLowerCase();
  if (n === 'bias' || n.endsWith('.bias') || n.endsWith('_bias')) return true;
  return n.includes('norm') || n.includes('omega') || n.includes('magnitude');
}

interface Slot {
  name: string;
  param: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  decay: boolean;
}

/** AdamW over a fixed, named list of trainable variables. Call {@link dispose} when done. */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly slots: Slot[];
  private stepCount = 0;

  constructor(params: readonly [string, tf.Variable][], options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    const noDecay = options.noDecay ?? defaultNoDecay;
    const seen = new Set<string>();
    this.slots = params.map(([name, param]) => {
      if (seen.has(name)) throw new Error(`AdamW: duplicate parameter name "${name}"`);
      seen.add(name);
      return {
        name,
        param,
        // tidy frees the zeros; variables are not tracked by tidy scopes.
        m: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
        v: tf.tidy(() => tf.variable(tf.zerosLike(param), false)),
        decay: !noDecay(name, param.shape),
      };
    });
  }

  /** Updates applied so far. */
  get step(): number {
    return this.stepCount;
  }

  /** Names of the parameters that receive weight decay. */
  decayedNames(): string[] {
    return this.slots.filter((s) => s.decay).map((s) => s.name);
  }

  /**
   * Apply one update with learning rate `lr`. `grads` maps each parameter name to its
   * gradient (same shape); a missing gradient is an error. Gradients are not disposed;
   * `gradScale` (default 1) multiplies each of them first (gradient clipping), as
   * `g.mul(gradScale)` would.
   *
   * With the native addon every parameter is updated in ONE pass, in place
   * (src/backend/optimizerKernels.ts), with the same float32 operations in the same order as
   * the tfjs ops below: the same bits.
   */
  update(grads: ReadonlyMap<string, tf.Tensor>, lr: number, gradScale = 1): void {
    const t = this.stepCount + 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - Math.pow(b1, t);
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, t));
    const stepSize = lr / bc1;
    const gs = this.slots.map((s) => {
      const g = grads.get(s.name);
      if (!g) throw new Error(`AdamW: no gradient for "${s.name}"`);
      return g;
    });
    if (nativeOptimizerActive()) {
      // The constants as the tfjs ops see them: JS numbers rounded to float32 scalars.
      const decayFactor = this.weightDecay !== 0 ? 1 - lr * this.weightDecay : 1;
      const consts = [b1, 1 - b1, b2, 1 - b2, bc2Sqrt, this.eps, decayFactor, stepSize, gradScale].map(Math.fround);
      adamwInPlace(this.slots.map((s, i) => ({ ...s, grad: gs[i], decay: s.decay && this.weightDecay !== 0 })), consts);
    } else {
      this.slots.forEach((s, i) => tf.tidy(() => {
        const g = gradScale === 1 ? gs[i] : gs[i].mul(gradScale);
        const m = s.m.mul(b1).add(g.mul(1 - b1));
        const v = s.v.mul(b2).add(g.square().mul(1 - b2));
        const denom = v.sqrt().div(bc2Sqrt).add(this.eps);
        const decayed = s.decay && this.weightDecay !== 0 ? s.param.mul(1 - lr * this.weightDecay) : s.param;
        const p = decayed.sub(m.div(denom).mul(stepSize));
        s.m.assign(m);
        s.v.assign(v);
        s.param.assign(p);
      }));
    }
    this.stepCount = t;
  }

  /** Copy the state to host arrays (exact float32 values). */
  exportState(): AdamWState {
    const m = new Map<string, MomentArray>();
    const v = new Map<string, MomentArray>();
    for (const s of this.slots) {
      m.set(s.name, { shape: [...s.m.shape], data: s.m.dataSync() as Float32Array });
      v.set(s.name, { shape: [...s.v.shape], data: s.v.dataSync() as Float32Array });
    }
    return { step: this.stepCount, m, v };
  }

  /** Restore a state from {@link exportState} (names and shapes must match). */
  importState(state: AdamWState): void {
    if (!Number.isInteger(state.step) || state.step < 0) throw new Error(`AdamW: bad step ${state.step}`);
    for (const s of this.slots) {
      for (const [which, src, dst] of [['m', state.m, s.m], ['v', state.v, s.v]] as const) {
        const a = src.get(s.name);
        if (!a) throw new Error(`AdamW state has no ${which} for "${s.name}"`);
        if (a.shape.length !== dst.shape.length || a.shape.some((d, i) => d !== dst.shape[i])) {
          throw new Error(`AdamW state ${which} for "${s.name}" has shape [${a.shape}], expected [${dst.shape}]`);
        }
        tf.tidy(() => dst.assign(tf.tensor(a.data, dst.shape, 'float32')));
      }
    }
    this.stepCount = state.step;
  }

  /** Free the moment tensors (the parameters belong to the caller). */
  dispose(): void {
    for (const s of this.slots) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}
