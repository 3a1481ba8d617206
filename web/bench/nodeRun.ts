/**
 * The page's fine-tuning run in Node, for scripts/web-bench.mjs: the same pipeline functions
 * (web/src/pipeline.ts) on the Node build of the library (`mor-peft` resolves to dist/index.js
 * here), the model read whole onto the wasm heap as in the page. The matmul path comes from
 * MOR_MATMUL (`wasm`: pure wasm; default: OpenBLAS when built). Prints one JSON line.
 * Usage: node --import tsx web/bench/nodeRun.ts '<RunSettings JSON>'
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendInfo, dirSource, initBackend, loadModelFrom, Tokenizer } from 'mor-peft';
import { fineTuneMor, loadTasks } from '../src/pipeline.ts';
import { PAGE_DEFAULTS, PAGE_TASKS, type RunSettings } from '../src/settings.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const settings: RunSettings = { ...PAGE_DEFAULTS, ...JSON.parse(process.argv[2] ?? '{}') };
await initBackend({ announce: false });
const base = dirSource(path.join(repo, 'models', 'base'));
const model = await loadModelFrom(base);
const tok = await Tokenizer.fromSource(base);
const tasks = await loadTasks(dirSource(path.join(repo, 'data', 'suite')), PAGE_TASKS);
const ft = await fineTuneMor(model, tok, tasks, settings);
ft.peft.dispose();
const info = backendInfo();
console.log(JSON.stringify({ matmulPath: info.matmulPath, threads: info.threads, steps: ft.losses.length, trainSeconds: ft.trainSeconds, tokensPerSec: ft.tokensPerSec }));
