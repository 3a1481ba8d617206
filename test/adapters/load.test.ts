/** Loading adapters: NaN/Inf in a stored tensor is refused before the model changes; merges never fold NaN in. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { UserError } from '../../src/errors.ts';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { savePretrained } from '../../src/adapters/save.ts';
import { loadAdapter } from '../../src/adapters/load.ts';
import type { AdapterConfigInput } from '../../src/adapters/config.ts';
import { ToyModel } from './helpers.ts';

await initBackend();

for (const [kind, bad] of [['lora', NaN], ['mor', Infinity], ['dora', -Infinity]] as const) {
  test(`${kind}: an adapter file with ${bad} in a tensor is refused, naming the tensor and the count; the model is unchanged`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-load-nan-'));
    try {
      const peft = getPeftModel(new ToyModel(8, 12, 1), { kind, r: 2, targetModules: ['q_proj'] } as AdapterConfigInput);
      savePretrained(peft, dir);
      peft.dispose();
      const file = path.join(dir, 'adapter_model.safetensors');
      const { tensors, metadata } = readSafetensors(file);
      const key = [...tensors.keys()].sort()[0];
      const t = tensors.get(key)!;
      (t.data as Float32Array)[0] = bad;
      (t.data as Float32Array)[1] = bad;
      await writeSafetensors(file, tensors, { metadata });
      const before = tf.memory().numTensors;
      const model = new ToyModel(8, 12, 1);
      const params = model.namedParameters().length;
      assert.throws(
        () => loadAdapter(model, dir),
        (e: unknown) => e instanceof UserError && e.message === `${file}: tensor "${key}" has 2 non-finite values (NaN/Inf) of ${t.data.length}`,
      );
      assert.equal(model.namedParameters().length, params, 'no adapter layer injected');
      model.dispose();
      assert.equal(tf.memory().numTensors, before);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('LoRA merge refuses to fold NaN into the base weight (as MoR refuses a non-finite routing), and leaves the model unmerged', () => {
  const before = tf.memory().numTensors;
  const peft = getPeftModel(new ToyModel(8, 12, 1), { kind: 'lora', r: 2, targetModules: ['q_proj'] });
  const [name, v] = peft.trainableParameters().find(([n]) => n.includes('lora_B'))!;
  tf.tidy(() => v.assign(tf.fill(v.shape, NaN)));
  assert.throws(() => peft.merge(), (e: unknown) => e instanceof UserError && /q_proj: merging adapter "default" gives \d+ non-finite values \(NaN\/Inf\); refusing to merge$/.test(e.message), name);
  assert.throws(() => peft.mergeAndUnload(), /refusing to merge/);
  const layers = peft.deltaLayers();
  assert.ok(layers.length > 0 && layers.every(([, l]) => l.mergedAdapter === undefined), 'nothing left merged');
  peft.dispose();
  assert.equal(tf.memory().numTensors, before);
});
