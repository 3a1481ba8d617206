/**
 * Our side of `npm run bench:model` (bench/model.bench.ts), in its own process so the rounds can
 * alternate with PyTorch's and ONNX Runtime's: `modelRun.ts REPS BATCH SEQ PROMPT NEW`. Builds the
 * random SmolLM-135M-shaped model (30 layers), warms up (one forward, one whole generation), times
 * REPS forwards of BATCH x SEQ tokens and one greedy generation of NEW tokens after a PROMPT-token
 * prompt (KV cache), and prints one JSON line ({@link ModelRunResult}).
 *
 * A forward is timed until `model.forward` returns: the wasm backend runs every kernel
 * synchronously, so the logits are computed then and sit on the wasm heap, as PyTorch's side
 * leaves its logits in a tensor. Reading all of them into JavaScript (`dataSync`, 200 MB at this
 * shape) is left out on both sides; it took 0.1-0.7 s here.
 */
import { describeBackend, initBackend, tf } from '../../src/backend/tf.ts';
import { makeConfig } from '../../src/models/llama/config.ts';
import { createRandomModel } from '../../src/models/random.ts';
import { generate } from '../../src/generate/generate.ts';

/** What our side reports. */
export interface ModelRunResult {
  forwardS: number[];
  generateS: number;
  newTokens: number;
  matmulPath: string;
  threads: number;
  /** The start-up banner's description of the path (which sgemm, which OpenBLAS kernels, threads). */
  backend: string;
  params: number;
}

/** The benchmark's model: SmolLM-135M widths, 30 layers, tied embeddings. */
export const BENCH_MODEL = {
  vocabSize: 49152, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30, numAttentionHeads: 9,
  numKeyValueHeads: 3, tieWordEmbeddings: true, rmsNormEps: 1e-5, maxPositionEmbeddings: 2048,
};

async function main(reps: number, batch: number, seq: number, promptLen: number, newTokens: number): Promise<ModelRunResult> {
  const info = await initBackend({ announce: false });
  const config = makeConfig(BENCH_MODEL);
  const model = createRandomModel(config, 0);
  const ids = tf.randomUniform([batch, seq], 0, config.vocabSize, 'int32', 0) as tf.Tensor2D;
  tf.tidy(() => void model.forward(ids).dataSync()); // warm-up: the heap grows to its size once
  const forwardS: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const logits = model.forward(ids);
    forwardS.push((performance.now() - t0) / 1000);
    logits.dispose();
  }
  ids.dispose();
  const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919) % config.vocabSize);
  // Warm-up: one whole generation, so the KV cache has grown the heap once (as the forward did).
  await generate(model, null, prompt, { maxNewTokens: newTokens, eosTokenIds: [] });
  const t0 = performance.now();
  const out = await generate(model, null, prompt, { maxNewTokens: newTokens, eosTokenIds: [] });
  const generateS = (performance.now() - t0) / 1000;
  const params = model.numParameters();
  model.dispose();
  return { forwardS, generateS, newTokens: out.tokenIds[0].length, matmulPath: info.matmulPath, threads: info.threads, backend: describeBackend(info), params };
}

const [reps, batch, seq, promptLen, newTokens] = process.argv.slice(2).map(Number);
main(reps, batch, seq, promptLen, newTokens).then(
  (r) => console.log(JSON.stringify(r)),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
