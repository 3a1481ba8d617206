/**
 * A kernel-level profile of a training step for `npm run bench:train -- --profile`: every kernel
 * registered on the wasm backend is wrapped with a wall-clock timer (kernels run synchronously, so
 * the time is exact; a kernel that calls others through the engine is counted once, at the outer
 * level). Kernels are sorted into kinds of work from their names and operand shapes, and the
 * matmul FLOPs are counted, so the step's distance from the matmul bound is measured, not
 * estimated. Time outside kernels (engine bookkeeping, the gradient tape, JS) is the rest.
 */
import * as tfc from '@tensorflow/tfjs-core';

/** Model widths that tell a base-model product from an adapter or attention product. */
export interface ProfileShape {
  hidden: number;
  intermediate: number;
  qWidth: number;
  kvWidth: number;
  headDim: number;
  vocab: number;
  tokens: number;
  seq: number;
}

interface Entry {
  ms: number;
  calls: number;
  flops: number;
}

/** BENCH_PROFILE_DETAIL=1: adapter products by shape, every element-wise and copy kernel on its own row. */
const DETAIL = process.env.BENCH_PROFILE_DETAIL === '1';
const MATMULS = new Set(['BatchMatMul', '_FusedMatMul', 'MatMul', 'MorStoredMatMul']);
const COPIES = new Set(['Transpose', 'Slice', 'Concat', 'Tile', 'Identity', 'Cast', 'Reshape', 'Pack', 'Unpack', 'StridedSlice', 'Pad', 'MirrorPad', 'Reverse', 'Fill', 'ZerosLike', 'OnesLike']);
const EMBEDDING = new Set(['GatherV2', 'MorStoredGather', 'UnsortedSegmentSum', 'ScatterNd']);
const LAYER_KERNELS = new Set(['MorRmsNorm', 'MorRmsNormGrad', 'MorSwiglu', 'MorSwigluGrad', 'MorRope', 'MorRopeGrad']);
const ATTENTION_KERNELS = new Set(['MorAttention', 'MorAttentionGrad']);

/** Installed profiler: start/stop recording, time work outside kernels, read the table. */
export class KernelProfile {
  private readonly entries = new Map<string, Entry>();
  private depth = 0;
  private recording = false;
  private readonly restore: tfc.KernelConfig[] = [];

  constructor(private readonly s: ProfileShape) {
    for (const k of tfc.getKernelsForBackend('wasm')) {
      this.restore.push(k);
      tfc.unregisterKernel(k.kernelName, 'wasm');
      tfc.registerKernel({ ...k, kernelFunc: (args) => this.run(k, args) });
    }
  }

  /** Put the original kernels back. */
  uninstall(): void {
    for (const k of this.restore) {
      tfc.unregisterKernel(k.kernelName, 'wasm');
      tfc.registerKernel(k);
    }
  }

  start(): void {
    this.entries.clear();
    this.recording = true;
  }

  stop(): void {
    this.recording = false;
  }

  /**
   * Time `fn` as a whole under `key`, its kernels included (not also counted on their own): for
   * work that runs outside tfjs kernels, such as the native optimizer pass.
   */
  timed<T>(key: string, fn: () => T): T {
    if (!this.recording) return fn();
    this.depth++;
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.depth--;
      const e = this.entries.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      this.entries.set(key, { ms: e.ms + performance.now() - t0, calls: e.calls + 1, flops: e.flops });
    }
  }

  private run(k: tfc.KernelConfig, args: Parameters<tfc.KernelFunc>[0]): ReturnType<tfc.KernelFunc> {
    if (!this.recording || this.depth > 0) return k.kernelFunc(args);
    this.depth++;
    const t0 = performance.now();
    try {
      return k.kernelFunc(args);
    } finally {
      const ms = performance.now() - t0;
      this.depth--;
      const [key, flops] = this.classify(k.kernelName, args.inputs as Record<string, tfc.TensorInfo>, args.attrs as Record<string, unknown>);
      const e = this.entries.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      e.ms += ms;
      e.calls++;
      e.flops += flops;
      this.entries.set(key, e);
    }
  }

  /** Kind of work and FLOPs of one kernel call. */
  private classify(name: string, inputs: Record<string, tfc.TensorInfo>, attrs: Record<string, unknown>): [string, number] {
    const s = this.s;
    const shapes = Object.values(inputs).map((t) => t.shape);
    if (MATMULS.has(name)) {
      const [m, k, n, batch] = matmulDims(name, inputs, attrs);
      const flops = 2 * m * k * n * batch;
      const dims = [m, k, n];
      const base = new Set([s.hidden, s.intermediate, s.qWidth, s.kvWidth, s.vocab, s.tokens]);
      if (batch > 1 || dims.every((d) => d === s.seq || d === s.headDim)) return ['attention products', flops];
      if (dims.includes(s.vocab)) return ['LM head products', flops];
      if (dims.every((d) => base.has(d))) return [`base products ${m}x${k}x${n}`, flops];
      return [DETAIL ? `adapter products ${m}x${k}x${n}${attrs.transposeA ? ' tA' : ''}${attrs.transposeB ? ' tB' : ''}` : 'adapter products', flops];
    }
    if (name.startsWith('MorRank')) return ['adapter rank kernels', 0];
    if (name === 'MorLayer' || name === 'MorLayerGrad') return ['MoR adapter (fused, native)', morLayerFlops(name, inputs)];
    if (EMBEDDING.has(name)) return ['embedding', 0];
    if (LAYER_KERNELS.has(name)) return ['RMSNorm, SwiGLU, rope (native)', 0];
    if (ATTENTION_KERNELS.has(name)) return ['attention (fused, native)', 0];
    if (shapes.some((sh) => sh[sh.length - 1] === s.vocab)) return ['softmax + cross-entropy (vocab wide)', 0];
    if (shapes.some((sh) => sh.length >= 3 && sh[sh.length - 1] === sh[sh.length - 2] && sh[sh.length - 1] === s.seq)) {
      return ['attention mask + softmax', 0];
    }
    if (COPIES.has(name)) return [`copies (${name})`, 0];
    return [`element-wise (${name})`, 0];
  }

  /**
   * Rows [kind, ms, share, calls, GFLOP] per step, over `steps` recorded steps of `stepMs` each
   * (the mean), sorted by time, element-wise kinds under 2 % folded; `flops` per step.
   */
  table(stepMs: number, steps = 1): { rows: string[][]; kernelMs: number; flops: number } {
    const perStep = new Map<string, Entry>();
    for (const [k, e] of this.entries) perStep.set(k, { ms: e.ms / steps, calls: e.calls / steps, flops: e.flops / steps });
    let kernelMs = 0;
    let flops = 0;
    for (const e of perStep.values()) {
      kernelMs += e.ms;
      flops += e.flops;
    }
    const folded = new Map<string, Entry>();
    for (const [k, e] of perStep) {
      const key = !DETAIL && (k.startsWith('element-wise') || k.startsWith('copies')) && e.ms < 0.02 * stepMs ? `${k.split(' ')[0]} (other)` : k;
      const f = folded.get(key) ?? { ms: 0, calls: 0, flops: 0 };
      folded.set(key, { ms: f.ms + e.ms, calls: f.calls + e.calls, flops: f.flops + e.flops });
    }
    folded.set('outside kernels (engine, tape, JS)', { ms: Math.max(0, stepMs - kernelMs), calls: 0, flops: 0 });
    const rows = [...folded.entries()]
      .sort((a, b) => b[1].ms - a[1].ms)
      .map(([k, e]) => [k, e.ms.toFixed(0), `${((100 * e.ms) / stepMs).toFixed(1)} %`, e.calls ? String(Math.round(e.calls)) : '', e.flops ? (e.flops / 1e9).toFixed(1) : '']);
    return { rows, kernelMs, flops };
  }
}

/**
 * FLOPs of the products inside a fused MoR kernel: forward `x [A; W_g]ᵀ` and `z bexpᵀ`; backward
 * `dy bexp`, `dyᵀ z`, `dhlᵀ x` and `dhl [A; W_g]`.
 */
function morLayerFlops(name: string, { x, a, wg, b }: Record<string, tfc.TensorInfo>): number {
  const [t, dIn] = x.shape;
  const [r, n, dOut] = [a.shape[0], wg.shape[0], b.shape[0]];
  const router = 2 * t * dIn * (r + n);
  const expansion = 2 * t * n * r * dOut;
  return name === 'MorLayer' ? router + expansion : 2 * router + 2 * expansion;
}

/** [m, k, n, batch] of a matmul kernel call. */
function matmulDims(name: string, inputs: Record<string, tfc.TensorInfo>, attrs: Record<string, unknown>): [number, number, number, number] {
  if (name === 'MorStoredMatMul') {
    const w = (attrs.weight as { shape: number[] }).shape;
    const [m, k] = inputs.x.shape;
    return [m, k, attrs.transposeW ? w[0] : w[1], 1];
  }
  const a = inputs.a.shape;
  const b = inputs.b.shape;
  const ta = Boolean(attrs.transposeA);
  const tb = Boolean(attrs.transposeB);
  const ra = a.length;
  const rb = b.length;
  const m = ta ? a[ra - 1] : a[ra - 2];
  const k = ta ? a[ra - 2] : a[ra - 1];
  const n = tb ? b[rb - 2] : b[rb - 1];
  const batchA = a.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.slice(0, -2).reduce((x, y) => x * y, 1);
  return [m, k, n, Math.max(batchA, batchB)];
}
