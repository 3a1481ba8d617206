/** Shared helpers for model tests: fixture paths and tensor comparisons. */
import * as path from 'node:path';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { tf } from '../../src/backend/tf.ts';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

export const FIXTURE_NAMES = ['llama_gqa', 'llama3_tied', 'llama_linear_bias_bf16', 'qwen2_tied_f16', 'mistral_gqa'];

export interface FixtureCase {
  name: string;
  input_ids: number[][];
  attention_mask?: number[][];
  position_ids?: number[][];
  labels: number[][];
  loss: number;
  logits: number[];
  shape: [number, number, number];
}

export function readExpected(name: string): FixtureCase[] {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'expected.json'), 'utf8')).cases;
}

/** Max |a - b| over rows/positions where `keep(b, t)` holds; arrays are flat [B, T, V]. */
export function maxAbsDiff(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  shape: [number, number, number],
  keep: (bi: number, ti: number) => boolean = () => true,
): number {
  const [nb, nt, nv] = shape;
  let m = 0;
  for (let i = 0; i < nb; i++) {
    for (let t = 0; t < nt; t++) {
      if (!keep(i, t)) continue;
      for (let v = 0; v < nv; v++) {
        const k = (i * nt + t) * nv + v;
        m = Math.max(m, Math.abs(a[k] - b[k]));
      }
    }
  }
  return m;
}

/** A temp dir removed at process exit. */
export function tempDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? '/tmp'), prefix));
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** Host copies of `grads` (from `tf.variableGrads`) keyed by the parameter names of `params`; the tensors are disposed. */
export function hostGrads(params: [string, tf.Variable][], grads: tf.NamedTensorMap): Map<string, Float32Array> {
  const byVar = new Map(params.map(([n, v]) => [v.name, n]));
  const out = new Map<string, Float32Array>();
  for (const [vn, g] of Object.entries(grads)) {
    out.set(byVar.get(vn)!, g.dataSync() as Float32Array);
    g.dispose();
  }
  return out;
}
