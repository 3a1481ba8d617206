// A consumer of the published package, run with plain `node` (no tsx, no initBackend call):
// load the bundled base model, attach MoR, train a few steps, save the adapter, load it into
// a fresh copy of the model, check both give the same logits, and generate.
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  loadModel, Tokenizer, getPeftModel, parseAdapterConfig, renderRecord, parseDataRecord, collate, batchLoss,
  train, loadAdapter, generate, backendInfo, tf,
} from 'mor-peft';

const fail = (msg) => { console.error(`app: FAIL ${msg}`); process.exit(1); };
const baseDir = path.dirname(fileURLToPath(import.meta.resolve('mor-peft/models/base/config.json')));

const model = await loadModel(baseDir);
const tokenizer = Tokenizer.fromDir(baseDir);
const peft = getPeftModel(model, parseAdapterConfig({ kind: 'mor', r: 4, numExperts: 4, targetModules: ['q_proj', 'v_proj', 'up_proj'] }));
console.log(`app: backend ${backendInfo().matmulPath}; ${peft.model.trainableParameters().length} trainable tensors`);

const records = [
  { prompt: 'Which word rhymes with armor? ', completion: 'farmer' },
  { prompt: 'What is the capital of France? ', completion: 'Paris' },
  { prompt: 'Opposite of hot? ', completion: 'cold' },
  { prompt: 'Two plus two? ', completion: 'four' },
].map((r, i) => parseDataRecord(r, 'train.jsonl', i + 1));
const batch = collate(records.map((r) => renderRecord(r, tokenizer)), { padId: tokenizer.padTokenId ?? 0 });
const data = { next: () => batch, getState: () => 0, setState: () => {} };
const result = await train({
  params: peft.model.trainableParameters(),
  lossFn: (b, ctx) => batchLoss(peft.model, b, ctx),
  data, steps: 8, logEvery: 1, schedule: { lr: 1e-2 },
});
const losses = result.log.filter((r) => r.type === 'train').map((r) => r.loss);
console.log(`app: loss ${losses.map((l) => l.toFixed(3)).join(' ')}`);
if (losses.length !== 8 || !(losses[7] < losses[0])) fail('the loss did not fall over 8 steps');

const outDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'mor-app-')), 'adapter');
peft.savePretrained(outDir);
console.log(`app: saved ${readdirSync(outDir).sort().join(', ')}`);

const reloaded = loadAdapter(await loadModel(baseDir), outDir);
const ids = tf.tensor2d([tokenizer.encode('What is the capital of France? ')], undefined, 'int32');
const [a, b] = [peft.model.forward(ids), reloaded.model.forward(ids)];
const diff = tf.max(tf.abs(tf.sub(a, b))).dataSync()[0];
console.log(`app: max |logits(trained) - logits(reloaded)| = ${diff.toExponential(2)}`);
if (!(diff <= 1e-5)) fail('the reloaded adapter gives different logits');

const out = await generate(reloaded.model, tokenizer, 'What is the capital of France? ', { maxNewTokens: 6 });
console.log(`app: generated ${JSON.stringify(out.texts[0])}`);
if (out.tokenIds[0].length === 0) fail('nothing generated');
console.log('app: OK');
