#!/usr/bin/env node
// Opens scripts/browser-smoke/page.html (dist/browser.js: MoR fine-tuning of models/base
// loaded from URLs with loadModelFrom / Tokenizer.fromSource) in Debian's Chromium through playwright-core (headless, no browser
// download), once plain and once cross-origin isolated (tfjs' threaded build), from a local
// static server over the repository. Prints what the page did; exits 1 when a run fails or its
// loss does not fall. Not part of CI (scripts/web-e2e.mjs tests the web page there).
// Needs: npm run build; apt-get install chromium; playwright-core (a devDependency;
// MOR_PLAYWRIGHT_CORE may point at another copy's index.mjs).
// Usage: node scripts/browser-smoke/run.mjs [--chromium /usr/bin/chromium]
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const pwEntry = process.env.MOR_PLAYWRIGHT_CORE;
const { chromium } = await import(pwEntry ? pathToFileURL(pwEntry).href : 'playwright-core').catch((e) => {
  console.error(`browser-smoke: cannot load playwright-core (${e.message.split('\n')[0]}); see the comment at the top`);
  process.exit(1);
});

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const argv = process.argv.slice(2);
const executablePath = argv.includes('--chromium') ? argv[argv.indexOf('--chromium') + 1] : '/usr/bin/chromium';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const ALLOWED = ['scripts/browser-smoke/', 'dist/', 'models/base/', 'node_modules/@tensorflow/tfjs-backend-wasm/dist/'];

function serve(isolated) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '');
    const file = path.join(root, rel);
    if (rel.includes('..') || !ALLOWED.some((p) => rel.startsWith(p)) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    const headers = { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' };
    if (isolated) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' });
    res.writeHead(200, headers).end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Load the page's adapter bytes with the Node library (dist/) and compare logits on its probe. */
async function checkAdapterInNode(r) {
  const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mor-browser-adapter-'));
  for (const [name, bytes] of Object.entries(r.adapterFiles)) fs.writeFileSync(path.join(dir, name), Uint8Array.from(bytes));
  const peft = lib.loadAdapter(await lib.loadModel(path.join(root, 'models', 'base')), dir);
  const logits = lib.tf.tidy(() => peft.model.forward(lib.tf.tensor2d([r.probeIds], undefined, 'int32')).dataSync());
  let diff = 0;
  for (let i = 0; i < logits.length; i++) diff = Math.max(diff, Math.abs(logits[i] - r.logits[i]));
  peft.model.dispose();
  return { diff, n: logits.length === r.logits.length ? logits.length : NaN };
}

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
let failed = false;
try {
  for (const isolated of [false, true]) {
    const server = await serve(isolated);
    try {
      const page = await browser.newPage();
      // 404s are expected: Tokenizer.fromSource asks for optional files (special_tokens_map.json, chat templates).
      page.on('console', (msg) => { if (msg.type() === 'error' && !/status of 404/.test(msg.text())) console.error(`  page: ${msg.text()}`); });
      await page.goto(`http://127.0.0.1:${server.address().port}/scripts/browser-smoke/page.html`);
      await page.waitForFunction(() => window.result !== undefined, undefined, { timeout: 300_000 });
      const r = await page.evaluate(() => window.result);
      const label = isolated ? 'cross-origin isolated' : 'plain page';
      if (!r.ok) {
        console.log(`${label}: FAIL ${r.error}`);
        failed = true;
        continue;
      }
      const fell = r.losses.at(-1) < r.losses[0];
      console.log(`${label} (crossOriginIsolated ${r.crossOriginIsolated}, ${r.cores} cores): ${r.info.matmulPath}, wasm threads ${r.info.wasmThreads}; loss ${r.losses.map((l) => l.toFixed(3)).join(' ')} `
        + `(${fell ? 'fell' : 'DID NOT FALL'}) in ${r.seconds.toFixed(1)} s; generated ${JSON.stringify(r.text)}; fs call: ${r.fsError}`);
      const { diff, n } = await checkAdapterInNode(r);
      const same = n > 0 && diff <= 1e-4 && r.reloadDiff === 0;
      console.log(`  adapter saved in the page, loaded in Node: max |logits diff| = ${diff.toExponential(2)} over ${n} logits; `
        + `loaded back in the page: ${r.reloadDiff} (${same ? 'ok' : 'FAIL'})`);
      if (!fell || !same) failed = true;
      await page.close();
    } finally {
      server.close();
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
