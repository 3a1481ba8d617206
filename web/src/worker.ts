/**
 * The training worker: owns the backend, the model and the tokenizer, so the page's main
 * thread only draws. Everything it reads is served with the page (base/, suite/, the .wasm
 * files); nothing comes from the network beyond that origin.
 */
import { initBackend, loadModelFrom, MemorySink, saveAdapterTo, Tokenizer, urlSource, generate } from 'mor-peft';
import type { LlamaForCausalLM, PeftModel } from 'mor-peft';
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { chatPrompt, evalItems, fineTuneMor, loadTasks, probeLogits, routingSummary, scoreAccuracy, type SuiteTask } from './pipeline.ts';
import type { Reply, Request } from './protocol.ts';
import { PROBE_PROMPT, type RunSettings } from './settings.ts';

const post = (r: Reply, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(r, transfer);

interface Loaded {
  model: LlamaForCausalLM;
  tok: Tokenizer;
  tasks: SuiteTask[];
  peft?: PeftModel<LlamaForCausalLM>;
}
let loaded: Loaded | undefined;
/** One request at a time: training and generation share the model. */
let queue: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<Request>) => {
  queue = queue.then(() => handle(ev.data)).catch((e: unknown) => post({ type: 'error', message: e instanceof Error ? e.message : String(e) }));
};

async function handle(req: Request): Promise<void> {
  if (req.type === 'init') return init(req.root, req.tasks, req.threads);
  if (!loaded) throw new Error('the worker has not loaded the model yet');
  if (req.type === 'train') return trainRun(loaded, req.settings);
  const { prompt, addSpecialTokens } = chatPrompt(loaded.tok, req.question);
  const out = await generate(loaded.model, loaded.tok, prompt, { maxNewTokens: req.maxNewTokens, addSpecialTokens });
  post({ type: 'generated', prompt: req.question, text: out.texts[0] });
}

async function init(root: string, taskNames: string[], threads: number | undefined): Promise<void> {
  const backend = await initBackend({
    announce: false,
    wasmThreads: threads,
    wasmPaths: { 'tfjs-backend-wasm.wasm': wasmPlain, 'tfjs-backend-wasm-simd.wasm': wasmSimd, 'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded },
  });
  post({ type: 'phase', text: 'loading the base model and the tasks' });
  const base = urlSource(new URL('base/', root));
  const suite = urlSource(new URL('suite/', root));
  const model = await loadModelFrom(base);
  const tok = await Tokenizer.fromSource(base);
  const tasks = await loadTasks(suite, taskNames);
  loaded = { model, tok, tasks };
  post({ type: 'ready', backend, isolated: self.crossOriginIsolated, tasks: tasks.map((t) => ({ name: t.name, train: t.train.length, test: t.test.length })) });
}

async function trainRun(l: Loaded, s: RunSettings): Promise<void> {
  if (l.peft) throw new Error('this page has already fine-tuned its model: reload the page to start again');
  const items = evalItems(l.tasks, s.evalItemsPerTask);
  post({ type: 'phase', text: `scoring the base model on ${items.length} test items` });
  const before = await scoreAccuracy(l.model, l.tok, items, (done, total) => post({ type: 'evalProgress', phase: 'before', done, total }));
  post({ type: 'accuracy', phase: 'before', result: before });

  post({ type: 'phase', text: `fine-tuning MoR for ${s.steps} steps` });
  let ft: Awaited<ReturnType<typeof fineTuneMor>>;
  try {
    ft = await fineTuneMor(l.model, l.tok, l.tasks, s, (point, total) => post({ type: 'step', point, total }));
  } catch (e) {
    loaded = undefined; // the failed run freed the model
    throw new Error(`${e instanceof Error ? e.message : String(e)} (reload the page to start again)`);
  }
  l.peft = ft.peft;

  post({ type: 'phase', text: `scoring the fine-tuned model on ${items.length} test items` });
  const after = await scoreAccuracy(l.model, l.tok, items, (done, total) => post({ type: 'evalProgress', phase: 'after', done, total }));
  post({ type: 'accuracy', phase: 'after', result: after });
  post({ type: 'routing', routing: routingSummary(ft.peft, l.tok, l.tasks, s) });

  const sink = new MemorySink('adapter');
  await saveAdapterTo(ft.peft, sink);
  const files = [...sink.files].map(([name, bytes]) => ({ name, bytes }));
  const probe = { prompt: PROBE_PROMPT, ...probeLogits(l.model, l.tok, PROBE_PROMPT) };
  post({ type: 'trained', files, probe, trainSeconds: ft.trainSeconds, tokensPerSec: ft.tokensPerSec, trainableParams: ft.trainableParams },
    [probe.logits.buffer as ArrayBuffer]);
  post({ type: 'phase', text: 'done' });
}
