#!/usr/bin/env node
// CI end-to-end test of the web page (web/, issue 13) in Debian's Chromium, driven by
// playwright-core (headless, no sandbox, no browser download). Needs `npm run web:build` first.
//
// Serves web/dist with `vite preview` (COOP/COEP headers: cross-origin isolated), opens the
// page, runs a short MoR fine-tune in its worker, and checks: the loss fell, the page kept
// drawing frames while the worker trained, the accuracy table has before and after columns,
// the routing heatmap and generation box work. Downloads the adapter files and probe.json
// through the page's buttons, then in Node loads the adapter with the library (loadModel +
// loadAdapter) and compares logits on the page's fixed prompt (max |diff| <= 1e-4), and runs
// `mor eval --adapter` on it. Writes runs/web-e2e/{screenshot.png, adapter/, probe.json, result.json}.
//
// Usage: node scripts/web-e2e.mjs [--steps 20] [--chromium /usr/bin/chromium] [--out runs/web-e2e]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { preview } from 'vite';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('steps', '20'));
const executablePath = arg('chromium', '/usr/bin/chromium');
const out = path.resolve(root, arg('out', 'runs/web-e2e'));
const TOLERANCE = 1e-4;
const t0 = Date.now();
const say = (s) => console.log(`web-e2e: ${s} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
const fail = (s) => {
  console.error(`web-e2e: FAIL ${s}`);
  process.exit(1);
};

if (!fs.existsSync(path.join(root, 'web', 'dist', 'index.html'))) fail('web/dist/index.html is missing: run `npm run web:build` first');
if (!fs.existsSync(executablePath)) fail(`${executablePath} not found: install Debian's chromium (apt-get install chromium)`);
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'adapter'), { recursive: true });

const server = await preview({ configFile: path.join(root, 'web', 'vite.config.ts'), logLevel: 'warn', preview: { host: '127.0.0.1', port: 0, strictPort: false } });
const url = server.resolvedUrls.local[0];
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
let result;
try {
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1100, height: 1400 } });
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(url) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) external.push(r.url()); });
  // 404s are expected: the tokenizer loader asks for optional side files.
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 404/.test(m.text())) console.error(`  page: ${m.text()}`); });
  page.on('pageerror', (e) => console.error(`  page error: ${e.message}`));
  await page.goto(`${url}?steps=${steps}&evalItemsPerTask=10&threads=2`);
  await page.waitForFunction(() => window.morPage.ready || window.morPage.error, undefined, { timeout: 60_000 });
  let s = await page.evaluate(() => window.morPage);
  if (s.error) fail(`the page failed to start: ${s.error}`);
  say(`page ready: ${s.backend.wasmThreads} wasm threads, cross-origin isolated ${s.isolated}`);
  // Served with COOP/COEP: tfjs' threaded build, with the 2 threads the URL asks for.
  if (!s.isolated || s.backend.wasmThreads !== 2) fail(`expected a cross-origin isolated page with 2 wasm threads, got isolated ${s.isolated}, ${s.backend.wasmThreads} threads`);

  await page.click('#train');
  await page.waitForFunction(() => window.morPage.losses.length > 0 || window.morPage.error, undefined, { timeout: 120_000 });
  const framesAtFirstStep = await page.evaluate(() => window.morPage.frames);
  await page.waitForFunction(() => window.morPage.routing || window.morPage.error, undefined, { timeout: 240_000, polling: 500 });
  await page.waitForFunction(() => window.morPage.probe || window.morPage.error, undefined, { timeout: 60_000 });
  s = await page.evaluate(() => window.morPage);
  if (s.error) fail(`the page failed while training: ${s.error}`);
  const framesDuringRun = s.frames - framesAtFirstStep;
  say(`trained ${s.losses.length} steps in ${s.trained.trainSeconds.toFixed(1)} s (${Math.round(s.trained.tokensPerSec)} tokens/s); page drew ${framesDuringRun} frames meanwhile`);

  // The loss fell: mean of the last quarter below the mean of the first quarter.
  const q = Math.max(1, Math.floor(s.losses.length / 4));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mean(s.losses.slice(0, q).map((p) => p.loss));
  const last = mean(s.losses.slice(-q).map((p) => p.loss));
  if (s.losses.length !== steps) fail(`expected ${steps} loss points, got ${s.losses.length}`);
  if (!(last < first)) fail(`the loss did not fall: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  if (framesDuringRun < 10) fail(`the page drew only ${framesDuringRun} frames while the worker trained (main thread blocked?)`);
  const rows = await page.$$eval('#accuracy tbody tr', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  const tasks = Object.keys(s.after.tasks).sort();
  if (rows.length !== tasks.length + 1 || rows.some((r) => r.length !== 5 || !/^\d+\.\d$/.test(r[2]) || !/^\d+\.\d$/.test(r[3]))) {
    fail(`accuracy table incomplete: ${JSON.stringify(rows)}`);
  }
  say(`loss ${first.toFixed(3)} -> ${last.toFixed(3)}; accuracy average ${rows.at(-1)[2]} -> ${rows.at(-1)[3]} % over ${rows.at(-1)[1]} items`);
  if (s.routing.tasks.length !== tasks.length) fail(`routing heatmap has ${s.routing.tasks.length} tasks, expected ${tasks.length}`);

  await page.fill('#generate input[name=question]', 'Is Lynette a female or a male name?');
  await page.click('#generate button');
  await page.waitForFunction(() => window.morPage.generated.length > 0 || window.morPage.error, undefined, { timeout: 60_000 });
  const generated = await page.evaluate(() => window.morPage.generated[0]?.text);
  say(`generated ${JSON.stringify(generated)}`);

  for (const name of ['adapter_config.json', 'adapter_model.safetensors', 'probe.json']) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#downloads button[data-file="${name}"]`)]);
    await download.saveAs(path.join(out, name === 'probe.json' ? name : path.join('adapter', name)));
  }
  await page.screenshot({ path: path.join(out, 'screenshot.png'), fullPage: true });
  if (external.length > 0) fail(`the page requested other origins: ${external.slice(0, 3).join(', ')}`);
  result = { steps, backend: s.backend, isolated: s.isolated, losses: s.losses, before: s.before, after: s.after, routing: s.routing,
    trained: s.trained, generated, framesDuringRun };
} finally {
  await browser.close();
  await server.close();
}

// In Node: the downloaded adapter on the library's own loader gives the page's logits.
const probe = JSON.parse(fs.readFileSync(path.join(out, 'probe.json'), 'utf8'));
const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
const peft = lib.loadAdapter(await lib.loadModel(path.join(root, 'models', 'base')), path.join(out, 'adapter'));
const logits = lib.tf.tidy(() => peft.model.forward(lib.tf.tensor2d([probe.ids], [1, probe.ids.length], 'int32')).dataSync());
peft.model.dispose();
if (logits.length !== probe.logits.length) fail(`Node gives ${logits.length} logits, the page ${probe.logits.length}`);
let diff = 0;
for (let i = 0; i < logits.length; i++) diff = Math.max(diff, Math.abs(logits[i] - probe.logits[i]));
say(`adapter loaded in Node (${lib.backendInfo().matmulPath}): max |logits diff| ${diff.toExponential(2)} over ${logits.length} logits`);
if (!(diff <= TOLERANCE)) fail(`logits differ by ${diff} (> ${TOLERANCE})`);

// And the CLI takes it: `mor eval --adapter` on the page's test items.
const data = Object.keys(result.after.tasks).sort().map((t) => path.join('data', 'suite', t, 'test.mc.jsonl'));
const ev = spawnSync(process.execPath, [path.join(root, 'bin', 'mor.js'), 'eval', '--model', 'models/base', '--adapter', path.join(out, 'adapter'),
  '--data', ...data, '--limit', '10', '--json'], { cwd: root, encoding: 'utf8', env: { ...process.env, MOR_QUIET: '1' } });
if (ev.status !== 0) fail(`mor eval --adapter failed: ${ev.stderr.trim().split('\n').at(-1)}`);
const report = JSON.parse(ev.stdout).multiple_choice;
say(`mor eval --adapter: average acc ${(100 * report.average.acc).toFixed(1)} % (page: ${(100 * result.after.average).toFixed(1)} %)`);
fs.writeFileSync(path.join(out, 'result.json'), JSON.stringify({ ...result, nodeLogitsMaxDiff: diff, morEval: report.average }, null, 1) + '\n');
say(`OK; screenshot in ${path.relative(root, path.join(out, 'screenshot.png'))}`);
process.exit(0);
