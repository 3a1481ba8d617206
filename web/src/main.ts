/**
 * The page: settings, live loss curve, routing heatmap, accuracy table, generation box and
 * adapter downloads. All model work happens in the worker (worker.ts); this thread only draws,
 * so the page stays responsive while it trains. `window.morPage` mirrors what the page shows,
 * for scripts that drive it (scripts/web-e2e.mjs, scripts/web-bench.mjs).
 *
 * URL parameters: `threads=N` (wasm threads, cross-origin isolated pages only), and any
 * {@link RunSettings} field (`steps=20&evalItemsPerTask=10`) to preset the form.
 */
import type { AccuracyResult, BackendInfo } from 'mor-peft';
import { renderAccuracyTable } from './accuracyTable.ts';
import { downloadBytes } from './download.ts';
import { drawRoutingHeatmap } from './heatmap.ts';
import { drawLossCurve } from './lossChart.ts';
import type { RoutingSummary, StepPoint } from './pipeline.ts';
import type { AdapterFile, Reply, Request } from './protocol.ts';
import { PAGE_DEFAULTS, PAGE_TASKS, type RunSettings } from './settings.ts';

/** What the page has shown so far (read by the e2e test and the benchmark). */
interface PageState {
  ready: boolean;
  backend?: BackendInfo;
  isolated?: boolean;
  phase: string;
  settings?: RunSettings;
  losses: StepPoint[];
  before?: AccuracyResult;
  after?: AccuracyResult;
  routing?: RoutingSummary;
  trained?: { trainSeconds: number; tokensPerSec: number; trainableParams: number; files: string[] };
  probe?: { prompt: string; ids: number[]; logits: number[] };
  generated: { prompt: string; text: string }[];
  /** Animation frames drawn since load: keeps rising while the worker trains. */
  frames: number;
  error?: string;
}
const state: PageState = { ready: false, phase: 'starting', losses: [], generated: [], frames: 0 };
(window as unknown as { morPage: PageState }).morPage = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const settingsForm = $<HTMLFormElement>('settings');
const FORM_FIELDS = ['steps', 'lr', 'batchSize', 'evalItemsPerTask'] as const;
for (const f of FORM_FIELDS) (settingsForm.elements.namedItem(f) as HTMLInputElement).value = String(params.get(f) ?? PAGE_DEFAULTS[f]);

const tick = () => { state.frames++; requestAnimationFrame(tick); };
requestAnimationFrame(tick);

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (r: Request) => worker.postMessage(r);
const threads = params.has('threads') ? Number(params.get('threads')) : undefined;
send({ type: 'init', root: new URL('.', location.href).href, threads, tasks: [...PAGE_TASKS] });

let adapterFiles: AdapterFile[] = [];
worker.onmessage = (ev: MessageEvent<Reply>) => show(ev.data);
worker.onerror = (ev) => show({ type: 'error', message: ev.message || 'the worker failed to start' });

function show(r: Reply): void {
  switch (r.type) {
    case 'ready': {
      Object.assign(state, { ready: true, backend: r.backend, isolated: r.isolated });
      const t = r.tasks.map((x) => `${x.name} (${x.train} train / ${x.test} test)`).join(', ');
      $('status').textContent = `backend: ${r.backend.backend}, ${r.backend.wasmThreads} wasm thread${r.backend.wasmThreads === 1 ? '' : 's'}`
        + `${r.isolated ? ' (cross-origin isolated)' : ' (not cross-origin isolated: one thread)'}; tasks: ${t}`;
      $<HTMLButtonElement>('train').disabled = false;
      for (const b of document.querySelectorAll<HTMLButtonElement>('#generate button')) b.disabled = false;
      return setPhase('ready');
    }
    case 'phase': return setPhase(r.text);
    case 'step': {
      state.losses.push(r.point);
      drawLossCurve($('loss'), state.losses, r.total);
      $('speed').textContent = `loss ${r.point.loss.toFixed(3)}, ${Math.round(r.point.tokensPerSec)} tokens/s`;
      return;
    }
    case 'evalProgress': return setPhase(`scoring ${r.phase === 'before' ? 'the base' : 'the fine-tuned'} model: ${r.done}/${r.total} choices`);
    case 'accuracy': {
      if (r.phase === 'before') state.before = r.result;
      else state.after = r.result;
      renderAccuracyTable($('accuracy'), state.before!, state.after);
      return;
    }
    case 'routing': {
      state.routing = r.routing;
      return drawRoutingHeatmap($('routing'), r.routing);
    }
    case 'trained': {
      adapterFiles = r.files;
      state.trained = { trainSeconds: r.trainSeconds, tokensPerSec: r.tokensPerSec, trainableParams: r.trainableParams, files: r.files.map((f) => f.name) };
      state.probe = { prompt: r.probe.prompt, ids: r.probe.ids, logits: Array.from(r.probe.logits) };
      $('speed').textContent = `${r.trainableParams.toLocaleString('en-US')} trainable parameters; ${r.trainSeconds.toFixed(1)} s, `
        + `${Math.round(r.tokensPerSec)} tokens/s over the run`;
      for (const b of document.querySelectorAll<HTMLButtonElement>('#downloads button')) b.disabled = false;
      return;
    }
    case 'generated': {
      state.generated.push({ prompt: r.prompt, text: r.text });
      $('generated').textContent = r.text || '(no text: the model ended its answer at once)';
      return;
    }
    case 'error': {
      state.error = r.message;
      $<HTMLButtonElement>('train').disabled = false;
      return setPhase(`error: ${r.message}`);
    }
  }
}

function setPhase(text: string): void {
  state.phase = text;
  $('phase').textContent = text;
}

settingsForm.onsubmit = (ev) => {
  ev.preventDefault();
  const s: RunSettings = { ...PAGE_DEFAULTS };
  for (const f of FORM_FIELDS) s[f] = Number((settingsForm.elements.namedItem(f) as HTMLInputElement).value);
  const bad = FORM_FIELDS.find((f) => !(s[f] > 0) || (f !== 'lr' && !Number.isInteger(s[f])));
  if (bad) return setPhase(`error: ${bad} must be a positive ${bad === 'lr' ? 'number' : 'integer'}`);
  state.settings = s;
  state.losses = [];
  $<HTMLButtonElement>('train').disabled = true;
  send({ type: 'train', settings: s });
};

$<HTMLFormElement>('generate').onsubmit = (ev) => {
  ev.preventDefault();
  const question = ((ev.target as HTMLFormElement).elements.namedItem('question') as HTMLInputElement).value;
  $('generated').textContent = '…';
  send({ type: 'generate', question, maxNewTokens: 24 });
};

for (const b of document.querySelectorAll<HTMLButtonElement>('#downloads button')) {
  b.onclick = () => {
    const name = b.dataset.file!;
    if (name === 'probe.json') return downloadBytes(name, JSON.stringify(state.probe), 'application/json');
    const f = adapterFiles.find((x) => x.name === name);
    if (f) downloadBytes(name, f.bytes, name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
  };
}
