/**
 * The page path end to end, in Node: models/base (model + tokenizer) read from a local HTTP
 * server through urlSource and from `File`s through fileListSource, an adapter saved to a
 * MemorySink and read back from its Blobs as Files; logits equal loadModel(dir) with the weight
 * store off, token ids equal Tokenizer.fromDir. Each file is fetched once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { initBackend, tf } from '../../src/backend/tf.ts';
import { fileListSource, MemorySink, urlSource } from '../../src/io/files.ts';
import { loadModel } from '../../src/models/load.ts';
import { loadModelFrom } from '../../src/models/loadSource.ts';
import type { LlamaForCausalLM } from '../../src/models/llama/model.ts';
import { Tokenizer } from '../../src/tokenizer/tokenizer.ts';
import { getPeftModel } from '../../src/adapters/inject.ts';
import { saveAdapterTo } from '../../src/adapters/save.ts';
import { loadAdapterFrom } from '../../src/adapters/load.ts';

await initBackend({ announce: false });

const BASE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'base');
const TEXT = 'The cat sat on the mat.';

function logits(model: LlamaForCausalLM, ids: number[]): Float32Array {
  const x = tf.tensor2d([ids], [1, ids.length], 'int32');
  const out = model.forward(x);
  const data = out.dataSync() as Float32Array;
  tf.dispose([x, out]);
  return data;
}

test('models/base over HTTP (urlSource) and as Files (fileListSource) loads as loadModel(dir)', async () => {
  const tok = Tokenizer.fromDir(BASE);
  const ids = tok.encode(TEXT);
  const ref = await loadModel(BASE, { weightStore: 'off' });
  const want = logits(ref, ids);
  ref.dispose();

  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    const file = path.join(BASE, decodeURIComponent((req.url ?? '').replace(/^\/base\//, '')));
    if (!file.startsWith(BASE) || !fs.existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const src = urlSource(`http://127.0.0.1:${(server.address() as AddressInfo).port}/base`);
    const [model, urlTok] = [await loadModelFrom(src), await Tokenizer.fromSource(src)];
    assert.deepEqual(urlTok.encode(TEXT), ids);
    assert.deepEqual(logits(model, ids), want);
    model.dispose();
    assert.equal(seen.filter((u) => u === '/base/model.safetensors').length, 1, 'the weights are fetched once');
  } finally {
    server.close();
  }

  const files = fs.readdirSync(BASE).map((f) => new File([fs.readFileSync(path.join(BASE, f))], `base/${f}`));
  const picked = fileListSource(files);
  const model = await loadModelFrom(picked);
  assert.deepEqual((await Tokenizer.fromSource(picked)).encode(TEXT), ids);
  assert.deepEqual(logits(model, ids), want);

  // Train-and-download shape: save to a MemorySink, hand out Blobs, pick them again as Files.
  const peft = getPeftModel(model, { kind: 'mor', r: 4, numExperts: 2 });
  for (const [, v] of peft.adapterTensors('default')) tf.tidy(() => v.assign(tf.onesLike(v).mul(0.01)));
  const adapted = logits(model, ids);
  assert.notDeepEqual(adapted, want);
  const sink = new MemorySink();
  await saveAdapterTo(peft, sink);
  const blobs = ['adapter_config.json', 'adapter_model.safetensors'].map((n) => new File([sink.blob(n)], n));
  peft.dispose();
  const again = await loadAdapterFrom(await loadModelFrom(picked), fileListSource(blobs));
  assert.deepEqual(logits(again.model, ids), adapted);
  again.dispose();
});
