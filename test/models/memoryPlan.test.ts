/**
 * The size policy's arithmetic against numbers computed by hand (in the comments), for a small
 * config and the LLaMA-2-7B shape, on both paths' activation coefficients, with every layer, some
 * layers or no layer checkpointed; `'auto'` picks the fewest checkpointed layers that fit; the
 * Qwen2.5-0.5B shape at batch 4 x 512 fits with the weights off the heap and checkpointing +
 * chunked loss, and not with float32 weights on the heap and no checkpointing; the refusal is one
 * line naming the knobs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig } from '../../src/models/llama/config.ts';
import { parseAdapterConfig } from '../../src/adapters/config.ts';
import { UserError } from '../../src/errors.ts';
import {
  adapterTrainableParams, autoGradientCheckpointing, checkRunFits, planRun, runFits, type RunShape,
} from '../../src/models/memoryPlan.ts';
import { defaultLossChunkRows } from '../../src/models/llama/chunkedLoss.ts';

const small = makeConfig({ vocabSize: 1000, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2 });
const smallShape: RunShape = {
  model: small, batchSize: 2, maxLength: 32, trainableParams: 1792, gradientCheckpointing: false,
  lossChunkRows: 0, weightsOffHeap: false, fileDtypeBytes: 4,
};

test('small config: weights, trainable, activations, loss by hand', () => {
  // LoRA r 4 on q (64 -> 64) and v (64 -> 32): 4 (64 + 64) + 4 (64 + 32) = 896 per layer, 2 layers.
  assert.equal(adapterTrainableParams(small, parseAdapterConfig({ kind: 'lora', r: 4 })), 1792);
  const p = planRun(smallShape);
  // Params: embed 64000 + head 64000 + norm 64 + 2 x (norms 128 + q 4096 + k 2048 + v 2048 +
  // o 4096 + gate 8192 + up 8192 + down 8192) = 202048; float32 on the heap: 808192 bytes.
  assert.equal(p.heap.weights, 808192);
  assert.equal(p.heap.trainable, 20 * 1792); // 35840
  // Pure-wasm coefficients (the default). One layer's peak: 4 B x 64 tokens x (56 x 64 + 20 x 128
  // + 6 x 4 heads x 32) = 256 x 6912 = 1769472; plain: 2 layers x 1769472.
  assert.equal(p.heap.activations, 3538944);
  assert.equal(p.heap.loss, 2304000); // 4 x 9 x 64 x 1000
  assert.equal(p.heap.total, 808192 + 35840 + 3538944 + 2304000);
  assert.equal(p.host.offHeapWeights, 0);

  const c = planRun({ ...smallShape, gradientCheckpointing: true, lossChunkRows: 16 });
  // Inputs and their gradients 2 x 2 layers x (4 x 64 x 64 = 16384) + the recompute 1.6 x 1769472
  // = 65536 + 2831155.2, rounded up.
  assert.equal(c.heap.activations, 2896692);
  // The last layer checkpointed: 2 x 16384 + max(1 plain layer 1769472, its tape 0.5 x 1769472 +
  // the recompute 1.6 x 1769472 = 3715891.2) -> 3748659.2, rounded up: more than plain here.
  assert.equal(planRun({ ...smallShape, gradientCheckpointing: 1 }).heap.activations, 3748660);
  // Native coefficients: 256 x (24.5 x 64 + 9.7 x 128 + 0) = 256 x 2809.6 = 719257.6 per layer.
  assert.equal(planRun({ ...smallShape, fusedKernels: true }).heap.activations, 1438516); // 1438515.2 up
  // 4 x 5.5 x 16 rows x 1000 + 4 x 3 x 64 x 64 = 352000 + 49152.
  assert.equal(c.heap.loss, 401152);

  const off = planRun({ ...smallShape, weightsOffHeap: true, fileDtypeBytes: 2 });
  assert.equal(off.heap.weights, 0);
  assert.equal(off.host.offHeapWeights, 2 * 202048);
  // The pure-wasm path adds W^T of every projection and the head: 2 x 36864 + 64000 = 137728 values.
  assert.equal(planRun({ ...smallShape, transposedWeights: true }).heap.weights, 808192 + 4 * 137728);
  // KV cache: 4 B x 2 (k, v) x 2 layers x 2 kv heads x 16 dims x 3 sequences x 100 tokens.
  assert.equal(planRun({ ...smallShape, trainableParams: 0, kvCache: { batch: 3, tokens: 100 } }).heap.kvCache, 153600);
});

const llama7b = makeConfig({ vocabSize: 32000, hiddenSize: 4096, intermediateSize: 11008, numHiddenLayers: 32, numAttentionHeads: 32 });

test('LLaMA-2-7B shape, MoR r 8 N 8 on the FFN, 1 x 512, checkpointing + chunked loss, bf16 weights off the heap', () => {
  // Per layer: gate and up 8 (4096 + 11008) + 8 (8 + 11008) + 8 x 4096 = 120832 + 88128 + 32768
  // = 241728; down 8 (11008 + 4096) + 8 (8 + 4096) + 8 x 11008 = 120832 + 32832 + 88064 = 241728;
  // x 3 x 32 layers = 23205888.
  const trainable = adapterTrainableParams(llama7b, parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8 }));
  assert.equal(trainable, 23205888);
  assert.equal(defaultLossChunkRows(32000), 524); // 16777216 / 32000 = 524.3
  const p = planRun({
    model: llama7b, batchSize: 1, maxLength: 512, trainableParams: trainable, gradientCheckpointing: true,
    lossChunkRows: 524, weightsOffHeap: true, fileDtypeBytes: 2,
  });
  // 6738415616 params (embed + head 2 x 131072000, 32 x 202383360 per layer, norm 4096) in bf16.
  assert.equal(p.host.offHeapWeights, 13476831232);
  assert.equal(p.heap.weights, 0);
  assert.equal(p.heap.trainable, 464117760);
  // One layer's peak (pure-wasm coefficients): 4 x 512 x (56 x 4096 + 20 x 11008 + 6 x 32 x 512)
  // = 2048 x 547840 = 1121976320; checkpointed: 2 x 32 x (4 x 512 x 4096 = 8388608) + 1.6 x
  // 1121976320 = 536870912 + 1795162112.
  assert.equal(p.heap.activations, 2332033024);
  // A chunk holds at most the 512 tokens there are: 4 x 5.5 x 512 x 32000 + 4 x 3 x 512 x 4096
  // = 360448000 + 25165824.
  assert.equal(p.heap.loss, 385613824);
  assert.equal(p.heap.total, 464117760 + 2332033024 + 385613824); // 2.96 GiB: fits the heap
  assert.equal(p.host.total, 3181764608 + 13476831232 + 512 * 2 ** 20); // 16.0 GiB: fits 24 GiB
  assert.ok(runFits(p, { hostBytes: 24 * 2 ** 30 }));
  assert.ok(!runFits(p, { hostBytes: 8 * 2 ** 30 }), 'not on an 8 GiB machine');
  // Without checkpointing: 32 x 1121976320 = 33.4 GiB of activations.
  assert.ok(!runFits({ ...p, ...planRun({ ...p.shape, gradientCheckpointing: false }) }, { hostBytes: 24 * 2 ** 30 }));

  // Native coefficients: one layer's peak 2048 x (24.5 x 4096 + 9.7 x 11008) = 424201420.8. The
  // heap holds 0.85 x 4294901760 = 3650666496 bytes; less trainable and loss: 2800934912 for the
  // activations. 5 plain layers, 27 checkpointed: 2 x 27 x 8388608 + max(5 x 424201420.8,
  // (2.5 + 1.6) x 424201420.8) = 452984832 + 2121007104 = 2573991936: fits. 6 plain, 26
  // checkpointed: 436207616 + 2545208524.8 = 2981416140.8: does not.
  const { gradientCheckpointing: _, ...rest } = p.shape;
  const native = { ...rest, fusedKernels: true };
  const limits = { hostBytes: 24 * 2 ** 30 };
  assert.equal(planRun({ ...native, gradientCheckpointing: 27 }).heap.activations, 2573991936);
  assert.ok(runFits(planRun({ ...native, gradientCheckpointing: 27 }), limits));
  assert.ok(!runFits(planRun({ ...native, gradientCheckpointing: 26 }), limits));
  assert.equal(autoGradientCheckpointing(native, limits), 27);
  // Counts above the layer count mean every layer.
  assert.equal(planRun({ ...native, gradientCheckpointing: 99 }).heap.activations, planRun({ ...native, gradientCheckpointing: true }).heap.activations);
});

const qwen = makeConfig({
  modelType: 'qwen2', vocabSize: 151936, hiddenSize: 896, numHiddenLayers: 24, intermediateSize: 4864,
  numAttentionHeads: 14, numKeyValueHeads: 2, tieWordEmbeddings: true,
});

test('Qwen2.5-0.5B shape at 4 x 512: fits off-heap with checkpointing + chunked loss, not on-heap float32 without checkpointing', () => {
  const trainable = adapterTrainableParams(qwen, parseAdapterConfig({ kind: 'mor', r: 8, numExperts: 8 }));
  const base: RunShape = {
    model: qwen, batchSize: 4, maxLength: 512, trainableParams: trainable, gradientCheckpointing: true,
    lossChunkRows: defaultLossChunkRows(151936), weightsOffHeap: true, fileDtypeBytes: 2,
  };
  const limits = { hostBytes: 24 * 2 ** 30 };
  assert.ok(runFits(planRun(base), limits), `fits: ${JSON.stringify(planRun(base).heap)}`);
  const onHeap = planRun({ ...base, weightsOffHeap: false, fileDtypeBytes: 4, gradientCheckpointing: false });
  assert.ok(!runFits(onHeap, limits));
  // 'auto' checkpoints every layer here on the pure-wasm coefficients (one plain layer would
  // already need 0.5 + 1.6 = 2.1 layers' peaks of 1.56 GB each), 19 of 24 on the native ones, and
  // leaves it off for a short sequence that fits anyway.
  assert.equal(autoGradientCheckpointing(base, limits), true);
  assert.equal(autoGradientCheckpointing({ ...base, fusedKernels: true }, limits), 19);
  assert.equal(autoGradientCheckpointing({ ...base, batchSize: 1, maxLength: 32 }, limits), false);
  assert.throws(() => checkRunFits(onHeap, limits), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.ok(!e.message.includes('\n'), 'one line');
    for (const knob of ['batchSize (4)', 'maxLength (512)', 'gradientCheckpointing: true', 'native addon']) assert.ok(e.message.includes(knob), `${knob} in: ${e.message}`);
    return true;
  });
  assert.doesNotThrow(() => checkRunFits(planRun(base), limits));
});

test('host memory limit: one line naming the knobs but not the addon it already uses', () => {
  const p = planRun({ ...smallShape, weightsOffHeap: true, fileDtypeBytes: 2 });
  assert.throws(() => checkRunFits(p, { hostBytes: 1000 }), (e: unknown) => {
    assert.ok(e instanceof UserError && /machine has/.test(e.message) && !e.message.includes('native addon'), String(e));
    return true;
  });
});
