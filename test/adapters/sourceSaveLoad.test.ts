/**
 * Adapters through the file-access interface: saveAdapterTo(MemorySink) writes the bytes
 * savePretrained(dir) writes; loadAdapterFrom(FileSource) on a model from loadModelFrom gives
 * exactly the logits of the saved model and of loadAdapter(dir) on loadModel(dir); errors name
 * the file and leave the model unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { Rng } from '../../src/util/rng.ts';
import { isUserError } from '../../src/errors.ts';
import { memorySource, MemorySink, type FileSource } from '../../src/io/files.ts';
import { parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadModelFrom } from '../../src/models/loadSource.ts';
import type { LlamaForCausalLM } from '../../src/models/llama/model.ts';
import { getPeftModel, PeftModel } from '../../src/adapters/inject.ts';
import { savePretrained, saveAdapterTo } from '../../src/adapters/save.ts';
import { loadAdapter, loadAdapterFrom } from '../../src/adapters/load.ts';

await initBackend({ announce: false });

const BASE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'base');
const userError = (re: RegExp) => (e: unknown) => isUserError(e) && re.test(e.message) && !e.message.includes('\n');

/** The top-level files of `dir` as a page would pass them to memorySource. */
function filesOf(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const f of fs.readdirSync(dir)) if (fs.statSync(path.join(dir, f)).isFile()) out[f] = new Uint8Array(fs.readFileSync(path.join(dir, f)));
  return out;
}
const baseSource = () => memorySource(filesOf(BASE), 'base');

function logits(model: LlamaForCausalLM): Float32Array {
  const ids = tf.tensor2d([[1, 5, 9, 20, 33, 7, 100, 3]], [1, 8], 'int32');
  const out = model.forward(ids);
  const data = out.dataSync() as Float32Array;
  tf.dispose([ids, out]);
  return data;
}

/** models/base with a MoR adapter (default) and a LoRA adapter (second), all weights random. */
async function trainedLike(): Promise<PeftModel<LlamaForCausalLM>> {
  const model = await loadModelFrom(baseSource());
  const peft = getPeftModel(model, { kind: 'mor', r: 4, numExperts: 2, targetModules: ['q_proj', 'v_proj', 'up_proj'] });
  peft.addAdapter('second', { kind: 'lora', r: 2, targetModules: ['o_proj'] });
  const rng = new Rng(7);
  for (const name of ['default', 'second']) {
    for (const [, v] of peft.adapterTensors(name)) {
      tf.tidy(() => v.assign(tf.tensor(rng.normalArray(v.size, 0, 0.05), v.shape, 'float32')));
    }
  }
  peft.setAdapter('default');
  return peft;
}

test('saveAdapterTo(MemorySink) writes the files savePretrained(dir) writes, and they load back to the same logits', async () => {
  const peft = await trainedLike();
  const want = logits(peft.model);
  peft.setAdapter('second');
  const wantSecond = logits(peft.model);
  assert.notDeepEqual(wantSecond, want);
  const sink = new MemorySink('sink');
  await saveAdapterTo(peft, sink);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-sink-'));
  savePretrained(peft, dir);
  assert.deepEqual([...sink.files.keys()].sort(), [
    'adapter_config.json', 'adapter_model.safetensors', 'second/adapter_config.json', 'second/adapter_model.safetensors',
  ]);
  for (const [name, bytes] of sink.files) assert.deepEqual(bytes, new Uint8Array(fs.readFileSync(path.join(dir, name))), name);
  assert.equal(sink.blob('adapter_model.safetensors').size, sink.files.get('adapter_model.safetensors')!.byteLength);
  peft.dispose();

  // Page path: model and adapter from memory.
  const fromMemory = await loadAdapterFrom(await loadModelFrom(baseSource()), sink.asSource());
  assert.deepEqual(logits(fromMemory.model), want);
  // Node path: loadModel(dir) + loadAdapter(dir), and the directory's files through a memorySource.
  const fromDir = loadAdapter(await loadModel(BASE, { weightStore: 'off' }), dir);
  assert.deepEqual(logits(fromDir.model), want);
  const dirFiles = await loadAdapterFrom(await loadModelFrom(baseSource()), memorySource(filesOf(dir)));
  assert.deepEqual(logits(dirFiles.model), want);
  // A second adapter from its folder in the sink.
  const second: Record<string, Uint8Array> = {};
  for (const [n, b] of sink.files) if (n.startsWith('second/')) second[n.slice('second/'.length)] = b;
  await loadAdapterFrom(fromMemory, memorySource(second), { adapterName: 'second' });
  fromMemory.setAdapter('second');
  assert.deepEqual(logits(fromMemory.model), wantSecond);
  for (const p of [fromMemory, fromDir, dirFiles]) p.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('loadAdapterFrom errors name <source>/<file> and leave the model unchanged', async () => {
  const peft = await trainedLike();
  const sink = new MemorySink();
  await saveAdapterTo(peft, sink, { adapterNames: ['default'] });
  peft.dispose();
  const files = Object.fromEntries(sink.files) as Record<string, Uint8Array | string>;
  const without = (name: string) => {
    const f = { ...files };
    delete f[name];
    return memorySource(f, 'mem');
  };
  const { tensors } = parseSafetensors(sink.files.get('adapter_model.safetensors')!);
  const extra = new Map(tensors).set('base_model.model.extra.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
  const nan = new Map(tensors);
  const [key, t] = [...nan][0];
  const bad = new Float32Array(t.data as Float32Array);
  bad[0] = Infinity;
  nan.set(key, { ...t, data: bad });
  const cases: [FileSource, RegExp][] = [
    [without('adapter_config.json'), /^mem\/adapter_config\.json not found \(an adapter in PEFT layout needs it\)$/],
    [memorySource({ ...files, 'adapter_config.json': '{"peft_type": ' }, 'mem'), /^mem\/adapter_config\.json: invalid JSON/],
    [without('adapter_model.safetensors'), /^mem\/adapter_model\.safetensors not found/],
    [memorySource({ ...files, 'adapter_model.safetensors': serializeSafetensors(extra) }, 'mem'),
      /^mem\/adapter_model\.safetensors: unexpected tensor "base_model\.model\.extra\.weight"/],
    [memorySource({ ...files, 'adapter_model.safetensors': serializeSafetensors(nan) }, 'mem'),
      /^mem\/adapter_model\.safetensors: tensor ".*" has 1 non-finite value/],
  ];
  const model = await loadModelFrom(baseSource());
  const want = logits(model);
  const before = tf.memory().numTensors;
  for (const [src, re] of cases) await assert.rejects(loadAdapterFrom(model, src), userError(re), re.source);
  assert.equal(tf.memory().numTensors, before, 'a failed load leaves no tensor behind');
  assert.deepEqual(logits(model), want, 'a failed load leaves the model unchanged');
  model.dispose();
});
