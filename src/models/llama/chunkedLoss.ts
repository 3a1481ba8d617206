/**
 * The causal-LM loss over chunks of rows, so the `[rows, vocab]` logits and their gradient
 * never exist at once: at most `chunkRows x vocab` of them live at a time.
 *
 * One `tf.customGrad` covers final norm -> head -> cross-entropy for all rows. When a gradient
 * tape is recording, its forward runs each chunk on an isolated tape (src/nn/tape.ts) and
 * takes the chunk's gradients right away, with upstream 1: the input rows' `[chunk, hidden]`
 * and those of the norm's and head's trainable tensors (none for a frozen or tied head; a
 * trainable weight, such as a tied embedding made a Variable, is handled the same way). The
 * logits of a chunk die with its tape. The node keeps only these gradients, and its backward
 * scales them by the upstream scalar: no logits are recomputed. Without a tape, the chunks'
 * losses are summed and nothing else is kept.
 *
 * The ops per chunk are those of the unchunked path (norm, head projection, crossEntropyRows),
 * so values and gradients equal it up to float summation order.
 */
import { tf } from '../../backend/tf.ts';
import type { LinearLike } from '../../nn/linear.ts';
import { isolatedGradients } from '../../nn/tape.ts';
import { crossEntropyRows } from './loss.ts';
import type { RMSNorm } from './rmsnorm.ts';

/**
 * Default rows per chunk for a vocabulary: `2^24 / vocab` rows (64 MiB of float32 logits per
 * chunk; 341 rows at vocab 49152, 110 at 151936, 524 at 32000), at least 64. Chunks of under
 * ~256 rows made the loss measurably slower than unchunked on the SmolLM-135M shape (vocab
 * 49152, hidden 576); 341 rows was as fast (bench/actmem.bench.ts).
 */
export function defaultLossChunkRows(vocabSize: number): number {
  return Math.max(64, Math.floor(2 ** 24 / vocabSize));
}

type Saver = tf.GradSaveFunc;

/**
 * Sum over rows of `crossEntropy(head(norm(x_i)), target_i)`.
 * @param x `[K, hidden]` rows of the last decoder layer (before the final norm)
 * @param targets `[K]` the token each row predicts (no ignore index: pass counted rows only)
 * @param chunkRows rows per chunk (>= 1)
 */
export function chunkedLossSum(x: tf.Tensor2D, targets: Int32Array, norm: RMSNorm, head: LinearLike, chunkRows: number): tf.Scalar {
  const [k, c] = x.shape;
  if (targets.length !== k) throw new Error(`chunkedLossSum: ${targets.length} targets for ${k} rows`);
  if (!(chunkRows >= 1)) throw new Error(`chunkedLossSum: chunkRows must be >= 1, got ${chunkRows}`);
  const chunks: [start: number, rows: number][] = [];
  for (let s = 0; s < k; s += chunkRows) chunks.push([s, Math.min(chunkRows, k - s)]);
  const chunkLoss = (xc: tf.Tensor2D, s: number, n: number): tf.Scalar => {
    const logits = head.forward(norm.forward(xc)) as tf.Tensor2D; // [n, vocab]
    return tf.sum(crossEntropyRows(logits, tf.tensor1d(targets.subarray(s, s + n), 'int32')));
  };

  if (!tf.engine().isTapeOn()) {
    let acc: tf.Scalar = tf.scalar(0);
    for (const [s, n] of chunks) {
      const next = tf.tidy(() => tf.add(acc, chunkLoss(x.slice([s, 0], [n, c]), s, n)) as tf.Scalar);
      acc.dispose();
      acc = next;
    }
    return acc;
  }

  // A tied head reads the embedding's weight without holding it: add it when it is trainable.
  const tiedWeight = (head as { weight?: tf.Tensor }).weight;
  const seen = new Set<tf.Variable>();
  const vars = [...norm.trainableParameters(), ...head.trainableParameters()]
    .map(([, v]) => v)
    .concat(tiedWeight instanceof tf.Variable && tiedWeight.trainable ? [tiedWeight] : [])
    .filter((v) => !seen.has(v) && seen.add(v));
  const node = tf.customGrad(((...args: (tf.Tensor | Saver)[]) => {
    const xIn = args[0] as tf.Tensor2D;
    const save = args[args.length - 1] as Saver;
    let sum: tf.Tensor = tf.scalar(0);
    const dxs: tf.Tensor[] = [];
    const dvars: (tf.Tensor | undefined)[] = vars.map(() => undefined);
    for (const [s, n] of chunks) {
      const xc = xIn.slice([s, 0], [n, c]); // [n, hidden]
      const { value, grads } = isolatedGradients(() => chunkLoss(xc, s, n), [xc, ...vars]);
      sum = tf.add(sum, value);
      dxs.push(grads[0] ?? tf.zerosLike(xc));
      grads.slice(1).forEach((g, i) => {
        if (g) dvars[i] = dvars[i] ? tf.add(dvars[i]!, g) : g;
      });
    }
    const dx = dxs.length === 1 ? dxs[0] : tf.concat(dxs, 0); // [K, hidden]
    save([dx, ...dvars.map((g, i) => g ?? tf.zerosLike(vars[i]))]);
    return {
      value: sum as tf.Scalar,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => saved.map((g) => tf.mul(g, dy as tf.Scalar)),
    };
  }) as never) as unknown as (...inputs: tf.Tensor[]) => tf.Scalar;
  return node(x, ...vars);
}
