/**
 * The size policy's arithmetic against numbers computed by hand (in the comments), for a small
 * config and the LLaMA-2-7B shape; the Qwen2.5-0.5B shape at batch 4 x 512 fits with the
 * weights off the heap and checkpointing + chunked loss, and not with float32 weights on the
 * heap and no checkpointing; the refusal is one line naming the knobs.
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
  // Per layer: 4 B x 64 tokens x (28 x 64 + 10 x 128 + 3 x 4 heads x 32) = 256 x 3456 = 884736;
  // plain: 2 x 2 layers x 884736.
  assert.equal(p.heap.activations, 3538944);
  assert.equal(p.heap.loss, 2304000); // 4 x 9 x 64 x 1000
  assert.equal(p.heap.total, 808192 + 35840 + 3538944 + 2304000);
  assert.equal(p.host.offHeapWeights, 0);

  const c = planRun({ ...smallShape, gradientCheckpointing: true, lossChunkRows: 16 });
  // 2 x 2 layers x (4 x 64 x 64 = 16384) + 3 x 884736 = 65536 + 2654208.
  assert.equal(c.heap.activations, 2719744);
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
  // Per layer: 4 x 512 x (28 x 4096 + 10 x 11008 + 3 x 32 x 512) = 2048 x 273920 = 560988160;
  // checkpointed: 2 x 32 x (4 x 512 x 4096 = 8388608) + 3 x 560988160 = 536870912 + 1682964480.
  assert.equal(p.heap.activations, 2219835392);
  // A chunk holds at most the 512 tokens there are: 4 x 5.5 x 512 x 32000 + 4 x 3 x 512 x 4096
  // = 360448000 + 25165824.
  assert.equal(p.heap.loss, 385613824);
  assert.equal(p.heap.total, 464117760 + 2219835392 + 385613824); // 2.86 GiB: fits the heap
  assert.equal(p.host.total, 3069566976 + 13476831232 + 512 * 2 ** 20); // 15.9 GiB: fits 24 GiB
  assert.ok(runFits(p, { hostBytes: 24 * 2 ** 30 }));
  assert.ok(!runFits(p, { hostBytes: 8 * 2 ** 30 }), 'not on an 8 GiB machine');
  // Without checkpointing: 2 x 32 x 560988160 = 33.4 GiB of activations.
  assert.ok(!runFits({ ...p, ...planRun({ ...p.shape, gradientCheckpointing: false }) }, { hostBytes: 24 * 2 ** 30 }));
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
  // 'auto' turns checkpointing on here, and leaves it off for a short sequence that fits anyway.
  assert.equal(autoGradientCheckpointing(base, limits), true);
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
