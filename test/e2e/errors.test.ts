/**
 * Malformed input through the CLI, as a user meets it: every case exits 1 with exactly one
 * stderr line `error: ...` that names the place (file:line, field, config key, module, tensor),
 * and prints nothing on stdout. A bug (a plain Error escaping a command) exits 2 with a stack.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { initBackend } from '../../src/backend/tf.ts';
import { main } from '../../src/cli/main.ts';
import { makeE2eSetup } from '../fixtures/e2e/setup.ts';

await initBackend({ announce: false });
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-e2e-err-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const setup = await makeE2eSetup(root);
const out = path.join(root, 'out');

async function run(argv: string[], stdout?: (s: string) => void): Promise<{ code: number; out: string; err: string }> {
  let o = '';
  let err = '';
  const code = await main(argv, { stdout: stdout ?? ((s) => { o += s; }), stderr: (s) => { err += s; } });
  return { code, out: o, err };
}

/** Write `name` under root with `lines` (strings written as-is, objects as JSON); returns its path. */
function file(name: string, lines: (string | object)[]): string {
  const p = path.join(root, name);
  fs.writeFileSync(p, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return p;
}

const chat = (u: string, a: string): object => ({ task: 'shout', messages: [{ role: 'user', content: u }, { role: 'assistant', content: a }] });
const MOR = '{"kind":"mor","r":2,"numExperts":2}';
const train = (data: string, ...more: string[]): string[] =>
  ['train', '--model', setup.modelDir, '--adapter', MOR, '--data', data, '--steps', '1', '--batch-size', '2', '--out-dir', out, ...more];
const evalMc = (data: string): string[] => ['eval', '--model', setup.modelDir, '--data', data];
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function config(name: string, extra: string[]): string {
  return file(name, [
    `model: ${setup.modelDir}`,
    'adapter:',
    '  kind: mor',
    '  r: 2',
    `data:`,
    `  - path: ${setup.train}`,
    'steps: 1',
    `outDir: ${out}`,
    ...extra,
  ]);
}

const badJson = file('bad-json.jsonl', [chat('Shout a', 'A!'), '{"task": "shout", "messages": [', chat('Shout b', 'B!')]);
const missing = file('missing.jsonl', [chat('Shout a', 'A!'), chat('Shout b', 'B!'), { task: 'shout', messages: [{ role: 'user' }, { role: 'assistant', content: 'X' }] }]);
const wrongType = file('wrong-type.jsonl', [{ prompt: 'Shout a', completion: 42 }]);
const badRole = file('bad-role.jsonl', [chat('Shout a', 'A!'), { messages: [{ role: 'bot', content: 'hi' }, { role: 'assistant', content: 'X' }] }]);
const emptyData = file('empty.jsonl', ['', '  ']);
const mcEmpty = file('mc-empty.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: 0 }, { task: 't', question: 'Q?', choices: [], answer: 0 }]);
const mcRange = file('mc-range.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: 2 }]);
const mcType = file('mc-type.jsonl', [{ task: 't', question: 'Q?', choices: ['a', 'b'], answer: '1' }]);
const mcMissing = file('mc-missing.jsonl', [{ task: 't', choices: ['a', 'b'], answer: 0 }]);
const unknownKey = config('unknown-key.yaml', ['learning_rate: 0.1']);
const unknownAdapterKey = config('unknown-adapter-key.yaml', ['']).replace(/$/, '');
fs.writeFileSync(unknownAdapterKey, fs.readFileSync(unknownAdapterKey, 'utf8').replace('  r: 2', '  r: 2\n  numExpert: 4'));
const wrongTypeKey = config('wrong-type-key.yaml', ['batchSize: four']);
const badYaml = file('bad.yaml', ['model: x', 'adapter: [unclosed', 'steps: 1']);
const corrupt = path.join(root, 'corrupt.safetensors');
{
  // A valid header that promises 64 bytes of data; only 8 follow (a truncated download).
  const header = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [4, 4], data_offsets: [0, 64] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  fs.writeFileSync(corrupt, Buffer.concat([len, header, Buffer.alloc(8)]));
}
const garbage = file('garbage.safetensors', ['this is not a safetensors file at all']);

/** [what, argv, the error line must match] */
const CASES: [string, string[], RegExp][] = [
  ['bad JSON line in training data', train(badJson), new RegExp(`^error: ${esc(badJson)}:2: invalid JSON`)],
  ['missing field in a chat message', train(missing), new RegExp(`^error: ${esc(missing)}:3: missing field "messages\\[0\\]\\.content"`)],
  ['wrong type (completion is a number)', train(wrongType), new RegExp(`^error: ${esc(wrongType)}:1: field "completion": expected string, got number`)],
  ['unknown chat role', train(badRole), new RegExp(`^error: ${esc(badRole)}:2: field "messages\\[0\\]\\.role": unknown value "bot"`)],
  ['empty training data', train(emptyData), new RegExp(`^error: .*${esc(path.basename(emptyData))}.*empty`)],
  ['missing training file', train(path.join(root, 'nope.jsonl')), /^error: .*nope\.jsonl: cannot read \(ENOENT\)/],
  ['MC item with empty choices', evalMc(mcEmpty), new RegExp(`^error: ${esc(mcEmpty)}:2: field "choices" is empty`)],
  ['MC answer out of range', evalMc(mcRange), new RegExp(`^error: ${esc(mcRange)}:1: field "answer" = 2 is out of range \\(expected an integer index in 0\\.\\.1 for 2 choices\\)`)],
  ['MC answer of the wrong type', evalMc(mcType), new RegExp(`^error: ${esc(mcType)}:1: field "answer": expected number, got string`)],
  ['MC item without a question', evalMc(mcMissing), new RegExp(`^error: ${esc(mcMissing)}:1: missing field "question"`)],
  ['unknown key in the train config', ['train', '--config', unknownKey], new RegExp(`^error: ${esc(unknownKey)}: learning_rate: unknown key`)],
  ['unknown adapter key in the train config', ['train', '--config', unknownAdapterKey], new RegExp(`^error: ${esc(unknownAdapterKey)}: adapter\\.numExpert: unknown key`)],
  ['wrong type in the train config', ['train', '--config', wrongTypeKey], new RegExp(`^error: ${esc(wrongTypeKey)}: batchSize: `)],
  ['invalid YAML', ['train', '--config', badYaml], new RegExp(`^error: ${esc(badYaml)}:\\d+: invalid YAML`)],
  ['target module that matches nothing', train(setup.train).map((a) => (a === MOR ? '{"kind":"mor","r":2,"targetModules":["qq_proj"]}' : a)),
    /^error: .*qq_proj.*matched no linear layer/],
  ['missing model directory (train)', train(setup.train).map((a) => (a === setup.modelDir ? path.join(root, 'no-model') : a)), /^error: .*no-model/],
  ['missing model directory (eval)', ['eval', '--model', path.join(root, 'no-model'), '--data', setup.mc], /^error: .*no-model/],
  ['missing model directory (generate)', ['generate', '--model', path.join(root, 'no-model'), '--prompt', 'hi'], /^error: .*no-model/],
  ['missing adapter directory (eval)', ['eval', '--model', setup.modelDir, '--adapter', path.join(root, 'no-adapter'), '--data', setup.mc], /^error: .*no-adapter/],
  ['truncated safetensors (inspect)', ['inspect', corrupt], new RegExp(`^error: ${esc(corrupt)}: .*`)],
  ['not a safetensors file (inspect)', ['inspect', garbage], new RegExp(`^error: ${esc(garbage)}: `)],
];

for (const [what, argv, re] of CASES) {
  test(`${what}: exit 1, one line "error: ..." naming the place`, async () => {
    const r = await run(argv);
    assert.equal(r.code, 1, `exit code (stderr: ${r.err})`);
    const lines = r.err.split('\n').filter((l) => l !== '');
    assert.equal(lines.length, 1, `exactly one error line, got:\n${r.err}`);
    assert.match(lines[0], re);
    assert.equal(r.out, '', 'nothing on stdout');
  });
}

test('a bad training file writes nothing into the output directory', () => {
  // Every train case above failed before training: no adapter, no checkpoint, no metrics.
  assert.ok(!fs.existsSync(path.join(out, 'adapter')), 'no adapter written');
  assert.ok(!fs.existsSync(path.join(out, 'metrics.jsonl')), 'no metrics written');
});

test('a bug (a plain Error escaping a command) prints a stack trace and exits 2', async () => {
  // Not a UserError: the io's stdout itself throws while `mor inspect` prints its table.
  const good = path.join(setup.modelDir, 'model.safetensors');
  const r = await run(['inspect', good], () => {
    throw new Error('stdout exploded');
  });
  assert.equal(r.code, 2, r.err);
  assert.match(r.err, /^internal error \(a bug in mor-peft, please report it\):\nError: stdout exploded\n/);
  assert.match(r.err, /\n +at .+/, 'a stack trace');
  assert.doesNotMatch(r.err, /^error: /m);
});

test('the real `mor` binary: a bad input exits 1 with one error line; --version exits 0', () => {
  // As a user runs it: a child process through bin/mor.js (MOR_QUIET hides the backend banner,
  // which is otherwise a second stderr line; reported).
  const bin = fileURLToPath(new URL('../../bin/mor.js', import.meta.url));
  const env = { ...process.env, MOR_QUIET: '1' };
  const bad = spawnSync(process.execPath, [bin, ...evalMc(mcRange)], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(bad.status, 1, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, new RegExp(`^error: ${esc(mcRange)}:1: field "answer" = 2 is out of range[^\\n]*\\n$`));
  const v = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(v.status, 0, v.stderr);
  assert.equal(v.stdout, '0.1.0\n');
});
