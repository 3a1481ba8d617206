#!/usr/bin/env node
// Fine-tuning throughput of the web page's run (web/src/pipeline.ts: MoR on the page's suite
// tasks, PAGE_DEFAULTS but `--steps`) in headless Chromium and in Node, for the README's
// Browser table. Needs `npm run web:build` and Debian's chromium.
//   browser, plain page (not cross-origin isolated: tfjs' SIMD build, one thread)
//   browser, cross-origin isolated, threaded build with 1 and with 2 threads (`?threads=N`)
//   Node, pure wasm (MOR_MATMUL=wasm) and OpenBLAS (the default when the addon is built)
// and, for the threads, one bigger matmul in an isolated page with 1 and 2 wasm threads.
// Tokens/s = attention-mask tokens trained / seconds of the training loop (evaluation excluded).
// Each configuration runs `--repeat` times, interleaved; the table keeps the best (the machine
// is shared: the best run is the one least disturbed) and the median.
// Usage: node scripts/web-bench.mjs [--steps 40] [--repeat 3] [--chromium /usr/bin/chromium]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'web', 'dist');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const steps = Number(arg('steps', '40'));
const repeat = Number(arg('repeat', '3'));
const executablePath = arg('chromium', '/usr/bin/chromium');
if (!fs.existsSync(path.join(dist, 'index.html'))) {
  console.error('web-bench: web/dist is missing: run `npm run web:build` first');
  process.exit(1);
}

// A bare product of a bigger shape than the page's model has, to show the threads at work:
// [512, 512] x [512, 2048], 20 times, after one warm-up (served as /matmul.html).
const MATMUL_PAGE = `<!doctype html><script type="module">
const m = await import('/lib/browser.js');
const threads = Number(new URLSearchParams(location.search).get('threads'));
const info = await m.initBackend({ announce: false, wasmThreads: threads, wasmPaths: '/wasm/' });
const { tf } = m;
const a = tf.randomNormal([512, 512]), b = tf.randomNormal([512, 2048]);
const product = () => { const c = tf.matMul(a, b); c.dataSync(); c.dispose(); };
product();
const t0 = performance.now();
for (let i = 0; i < 20; i++) product();
window.result = { threads: info.wasmThreads, ms: (performance.now() - t0) / 20 };
</script>`;
const EXTRA = { 'lib/': path.join(root, 'dist'), 'wasm/': path.join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') };

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json' };
/** web/dist over HTTP, with or without the COOP/COEP headers. */
function serve(isolated) {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const cross = isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
    if (rel === 'matmul.html') return void res.writeHead(200, { 'Content-Type': 'text/html', ...cross }).end(MATMUL_PAGE);
    const extra = Object.keys(EXTRA).find((p) => rel.startsWith(p));
    const file = extra ? path.join(EXTRA[extra], rel.slice(extra.length)) : path.join(dist, rel);
    if (rel.split('/').includes('..') || !fs.existsSync(file) || !fs.statSync(file).isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', ...cross }).end(fs.readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

async function inBrowser(browser, isolated, threads) {
  const server = await serve(isolated);
  try {
    const page = await browser.newPage();
    const q = `steps=${steps}&evalItemsPerTask=1${threads ? `&threads=${threads}` : ''}`;
    await page.goto(`http://127.0.0.1:${server.address().port}/index.html?${q}`);
    await page.waitForFunction(() => window.morPage.ready || window.morPage.error, undefined, { timeout: 60_000 });
    await page.click('#train');
    await page.waitForFunction(() => window.morPage.trained || window.morPage.error, undefined, { timeout: 600_000, polling: 500 });
    const s = await page.evaluate(() => window.morPage);
    await page.close();
    if (s.error) throw new Error(s.error);
    return { tokensPerSec: s.trained.tokensPerSec, trainSeconds: s.trained.trainSeconds, threads: s.backend.wasmThreads, isolated: s.isolated };
  } finally {
    server.close();
  }
}

async function matmulInBrowser(browser, threads) {
  const server = await serve(true);
  try {
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${server.address().port}/matmul.html?threads=${threads}`);
    await page.waitForFunction(() => window.result, undefined, { timeout: 120_000 });
    const r = await page.evaluate(() => window.result);
    await page.close();
    return r;
  } finally {
    server.close();
  }
}

function inNode(matmul) {
  const env = { ...process.env, MOR_QUIET: '1' };
  if (matmul) env.MOR_MATMUL = matmul;
  else delete env.MOR_MATMUL;
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'web/bench/nodeRun.ts', JSON.stringify({ steps })], { cwd: root, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr.trim().split('\n').at(-1));
  return JSON.parse(r.stdout.trim().split('\n').at(-1));
}

const runs = new Map();
const matmulMs = { 1: [], 2: [] };
const add = (label, r) => {
  runs.set(label, [...(runs.get(label) ?? []), r.tokensPerSec]);
  console.log(`web-bench: ${label}: ${Math.round(r.tokensPerSec)} tokens/s (${steps} steps in ${r.trainSeconds.toFixed(1)} s)`);
};
const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const version = browser.version();
try {
  for (let i = 0; i < repeat; i++) {
    add('Chromium, plain page (SIMD build, 1 thread)', await inBrowser(browser, false));
    add('Chromium, cross-origin isolated, threaded build, 1 thread', await inBrowser(browser, true, 1));
    add('Chromium, cross-origin isolated, threaded build, 2 threads', await inBrowser(browser, true, 2));
    for (const threads of [1, 2]) {
      const r = await matmulInBrowser(browser, threads);
      matmulMs[threads].push(r.ms);
      console.log(`web-bench: Chromium, isolated, [512,512]x[512,2048] matmul, ${r.threads} wasm thread${r.threads === 1 ? '' : 's'}: ${r.ms.toFixed(1)} ms`);
    }
    add('Node, pure wasm (MOR_MATMUL=wasm)', inNode('wasm'));
    const blas = inNode(undefined);
    add(`Node, ${blas.matmulPath === 'wasm+blas' ? `OpenBLAS (${blas.threads} threads)` : 'default path (no OpenBLAS)'}`, blas);
  }
} finally {
  await browser.close();
}
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`\n${steps} steps, best and median of ${repeat}; ${os.cpus().length} logical cores (${cpu}), Chromium ${version}, Node ${process.version}\n`);
console.log('| run | tokens/s, best | median |\n|:--|--:|--:|');
for (const [label, xs] of runs) {
  const sorted = [...xs].sort((a, b) => a - b);
  console.log(`| ${label} | ${Math.round(sorted.at(-1))} | ${Math.round(sorted[Math.floor(sorted.length / 2)])} |`);
}
const best = (xs) => xs.reduce((a, b) => Math.min(a, b), Infinity).toFixed(1);
console.log(`\n[512,512]x[512,2048] matmul in an isolated page, best of ${repeat}: ${best(matmulMs[1])} ms on 1 wasm thread, ${best(matmulMs[2])} ms on 2`);
