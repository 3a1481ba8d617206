/**
 * Training metrics: the records the trainer produces (one per step, one per evaluation)
 * and a JSONL writer (one JSON object per line), the format mlx-lm / HF loggers users
 * post-process with `jq` or pandas.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.ts';

/** One optimizer update. */
export interface TrainRecord {
  type: 'train';
  /** Update number, 1-based. */
  step: number;
  /** Mean over micro-batches of main loss + auxiliary losses. */
  loss: number;
  /** Learning rate used for this update. */
  lr: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Tokens (attention-mask ones) processed in this update. */
  tokens: number;
  /** Seconds since this process started training (not deterministic). */
  elapsedSec: number;
  /** Throughput of this process so far (not deterministic). */
  tokensPerSec: number;
}

/** One evaluation, with whatever metrics the eval function returned (`loss`, `acc`, ...). */
export interface EvalRecord {
  type: 'eval';
  step: number;
  metrics: Record<string, number>;
}

export type MetricRecord = TrainRecord | EvalRecord;

/** Appends records to a JSONL file; the directory is created on first use. */
export class MetricsWriter {
  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  }

  /** Append one record as one line (synchronous, so a crash loses at most this line). */
  write(record: MetricRecord): void {
    fs.appendFileSync(this.file, JSON.stringify(record) + '\n');
  }

  /** Atomically replace the file's content by `records` (used when resuming a run). */
  reset(records: readonly MetricRecord[]): void {
    writeFileAtomicSync(this.file, records.map((r) => JSON.stringify(r) + '\n').join(''));
  }
}

/** Parse a metrics JSONL file (blank lines ignored). */
export function readMetrics(file: string): MetricRecord[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MetricRecord);
}
