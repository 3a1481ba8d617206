/** Messages between the page (main.ts) and the training worker (worker.ts). */
import type { AccuracyResult, BackendInfo } from 'mor-peft';
import type { RoutingSummary, StepPoint } from './pipeline.ts';
import type { RunSettings } from './settings.ts';

/** Page -> worker. */
export type Request =
  /** `root`: the page's URL; the model is served under `base/`, the tasks under `suite/`. */
  | { type: 'init'; root: string; threads?: number; tasks: string[] }
  | { type: 'train'; settings: RunSettings }
  | { type: 'generate'; question: string; maxNewTokens: number };

/** One downloadable file of the trained adapter (PEFT layout). */
export interface AdapterFile {
  name: string;
  bytes: Uint8Array;
}

/** Worker -> page. */
export type Reply =
  | { type: 'ready'; backend: BackendInfo; isolated: boolean; tasks: { name: string; train: number; test: number }[] }
  | { type: 'phase'; text: string }
  | { type: 'step'; point: StepPoint; total: number }
  | { type: 'evalProgress'; phase: 'before' | 'after'; done: number; total: number }
  | { type: 'accuracy'; phase: 'before' | 'after'; result: AccuracyResult }
  | { type: 'routing'; routing: RoutingSummary }
  | {
    type: 'trained';
    files: AdapterFile[];
    probe: { prompt: string; ids: number[]; logits: Float32Array };
    trainSeconds: number;
    tokensPerSec: number;
    trainableParams: number;
  }
  | { type: 'generated'; prompt: string; text: string }
  | { type: 'error'; message: string };
