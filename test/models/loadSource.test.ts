/**
 * loadModelFrom: a model read through a FileSource (memory here; URLs and Files go through the
 * same interface) gives exactly the logits of loadModel(dir) with the weight store off, for the
 * bundled base model, fixtures (F32, F16, tied) and a sharded checkpoint; missing files, bad
 * JSON, missing / mis-shaped / extra / non-finite weights are one-line UserErrors naming the
 * file, and no tensor leaks on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadConfigFrom, loadModelFrom } from '../../src/models/loadSource.ts';
import { memorySource, type FileSource } from '../../src/io/files.ts';
import { dirSource } from '../../src/io/nodeFiles.ts';
import { parseSafetensors, serializeSafetensors, type HostTensor } from '../../src/io/safetensors.ts';
import { isUserError } from '../../src/errors.ts';
import { FIXTURES } from './helpers.ts';

await initBackend({ announce: false });

const BASE = path.resolve(FIXTURES, '..', '..', '..', 'models', 'base');
const userError = (re: RegExp) => (e: unknown) => isUserError(e) && re.test(e.message) && !e.message.includes('\n');

/** The files of `dir` (top level), as a memorySource would be given them by a page. */
function filesOf(dir: string): Record<string, Uint8Array> {
  const out: Record<string, Uint8Array> = {};
  for (const name of fs.readdirSync(dir)) out[name] = new Uint8Array(fs.readFileSync(path.join(dir, name)));
  return out;
}

/** Logits of both loads on one batch; the two arrays must be equal bit for bit. */
async function logitsOf(dir: string, src: FileSource, vocab: number): Promise<[Float32Array, Float32Array]> {
  // Counted before the models exist: on the pure-wasm path their projections keep a Wᵀ from the
  // first forward on, which dispose() frees.
  const before = tf.memory().numTensors;
  const ids = tf.tensor2d([[1, 5, 9, 20, 33, 7, 40, 3].map((i) => i % vocab)], [1, 8], 'int32');
  const [a, b] = [await loadModel(dir, { weightStore: 'off' }), await loadModelFrom(src)];
  const [la, lb] = [a.forward(ids), b.forward(ids)];
  const out: [Float32Array, Float32Array] = [la.dataSync() as Float32Array, lb.dataSync() as Float32Array];
  tf.dispose([la, lb]);
  a.dispose();
  b.dispose();
  ids.dispose();
  assert.equal(tf.memory().numTensors, before);
  return out;
}

for (const [name, dir, vocab] of [
  ['models/base', BASE, 4096],
  ['llama_gqa', path.join(FIXTURES, 'llama_gqa'), 48],
  ['qwen2_tied_f16', path.join(FIXTURES, 'qwen2_tied_f16'), 48],
] as const) {
  test(`${name}: loadModelFrom(memorySource) gives the logits of loadModel(dir, weightStore off)`, async () => {
    const [a, b] = await logitsOf(dir, memorySource(filesOf(dir)), vocab);
    assert.deepEqual(b, a);
  });
}

test('a dirSource loads like the directory', async () => {
  const dir = path.join(FIXTURES, 'llama_gqa');
  const [a, b] = await logitsOf(dir, dirSource(dir), 48);
  assert.deepEqual(b, a);
});

/** llama_gqa's tensors split over two shards plus an index. */
function sharded(edit: (files: Record<string, Uint8Array | string>, index: Record<string, string>) => void = () => {}): FileSource {
  const files = filesOf(path.join(FIXTURES, 'llama_gqa'));
  const { tensors } = parseSafetensors(files['model.safetensors']);
  delete files['model.safetensors'];
  const shards = [new Map<string, HostTensor>(), new Map<string, HostTensor>()];
  const index: Record<string, string> = {};
  [...tensors].forEach(([n, t], i) => {
    shards[i % 2].set(n, t);
    index[n] = `model-0000${(i % 2) + 1}-of-00002.safetensors`;
  });
  const out: Record<string, Uint8Array | string> = { ...files };
  shards.forEach((s, i) => (out[`model-0000${i + 1}-of-00002.safetensors`] = serializeSafetensors(s)));
  edit(out, index);
  out['model.safetensors.index.json'] = JSON.stringify({ metadata: {}, weight_map: index });
  return memorySource(out, 'shards');
}

test('a sharded checkpoint (index + shards) loads from a memorySource with the same logits', async () => {
  const dir = path.join(FIXTURES, 'llama_gqa');
  const [a, b] = await logitsOf(dir, sharded(), 48);
  assert.deepEqual(b, a);
});

test('errors name the file and leak no tensor', async () => {
  const files = filesOf(path.join(FIXTURES, 'llama_gqa'));
  const { tensors } = parseSafetensors(files['model.safetensors']);
  const withTensors = (edit: (t: Map<string, HostTensor>) => void) => {
    const t = new Map(tensors);
    edit(t);
    return memorySource({ ...files, 'model.safetensors': serializeSafetensors(t) }, 'mem');
  };
  const without = (name: string) => {
    const f: Record<string, Uint8Array> = { ...files };
    delete f[name];
    return memorySource(f, 'mem');
  };
  const first = [...tensors.keys()].find((n) => n.endsWith('q_proj.weight'))!;
  const before = tf.memory().numTensors;
  const cases: [FileSource, RegExp][] = [
    [without('config.json'), /^mem\/config\.json not found \(a Hugging Face model needs config\.json\)$/],
    [memorySource({ ...files, 'config.json': '{"model_type": ' }, 'mem'), /^mem\/config\.json: invalid JSON/],
    [without('model.safetensors'), /^mem: no model\.safetensors or model\.safetensors\.index\.json$/],
    [memorySource({ ...files, 'model.safetensors': new Uint8Array([1, 2, 3]) }, 'mem'), /^mem\/model\.safetensors: /],
    [withTensors((t) => t.delete(first)), new RegExp(`^mem: missing weight ${first.replace(/\./g, '\\.')} \\(expected shape`)],
    [withTensors((t) => t.set('model.extra.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) })),
      /^mem: unexpected weights not used by llama model: model\.extra\.weight$/],
    [withTensors((t) => t.set(first, { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) })),
      /^mem\/model\.safetensors: weight .*q_proj\.weight has shape \[2,2\], expected \[/],
    [withTensors((t) => {
      const bad = new Float32Array(t.get(first)!.data as Float32Array);
      bad[3] = NaN;
      t.set(first, { ...t.get(first)!, data: bad });
    }), /^mem\/model\.safetensors: tensor ".*q_proj\.weight" has 1 non-finite value \(NaN\/Inf\)/],
    [sharded((f) => delete f['model-00002-of-00002.safetensors']),
      /^shards\/model-00002-of-00002\.safetensors not found \(a shard listed in model\.safetensors\.index\.json for /],
    [sharded((f, index) => (index[first] = '../outside.safetensors')), /^invalid file name "\.\.\/outside\.safetensors"/],
  ];
  for (const [src, re] of cases) await assert.rejects(loadModelFrom(src), userError(re), re.source);
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind by a failed load');
  const noSingle = { ...files } as Record<string, Uint8Array | string>;
  delete noSingle['model.safetensors'];
  await assert.rejects(
    loadModelFrom(memorySource({ ...noSingle, 'model.safetensors.index.json': '{"weight_map": 3}' }, 'mem')),
    userError(/^mem\/model\.safetensors\.index\.json: missing "weight_map"$/),
  );
  assert.equal((await loadConfigFrom(memorySource(files))).modelType, 'llama');
});
