/**
 * Training progress for people: a live bar (cli-progress) on a terminal, plain periodic
 * lines when the output is a pipe or a log file (CI, `nohup`, `| tee`), e.g.
 * `step 20/200 loss 2.3412 lr 1.0e-4 tok/s 1534 eta 1m20s`.
 */
import cliProgress from 'cli-progress';
import type { EvalRecord, TrainRecord } from './metrics.ts';

/** `1m20s`, `45s`, `2h03m`; `?` when unknown. */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** A learning rate in short scientific notation: `1.0e-4`. */
export function formatLr(lr: number): string {
  return lr === 0 ? '0' : lr.toExponential(1);
}

/** The plain line for one step (also used in logs). */
export function formatStepLine(rec: TrainRecord, total: number, etaSec: number): string {
  return (
    `step ${rec.step}/${total} loss ${rec.loss.toFixed(4)} lr ${formatLr(rec.lr)} ` +
    `tok/s ${Math.round(rec.tokensPerSec)} eta ${formatDuration(etaSec)}`
  );
}

/** The plain line for one evaluation: `eval step 20 loss 2.1034 acc 0.5312`. */
export function formatEvalLine(rec: EvalRecord): string {
  const parts = Object.entries(rec.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  return `eval step ${rec.step} ${parts.join(' ')}`.trimEnd();
}

/** Where progress goes. */
export interface ProgressOptions {
  /** Total number of updates. */
  total: number;
  /** Output stream. Default `process.stderr`. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Force the bar (true) or plain lines (false). Default: `stream.isTTY`. */
  tty?: boolean;
  /** Plain mode: print every N steps (and the first and last). Default ~20 lines per run. */
  every?: number;
  /** Clock in milliseconds (tests). Default `performance.now`. */
  now?: () => number;
}

/** Renders trainer records as a bar or as lines; call {@link stop} at the end. */
export class ProgressReporter {
  private readonly total: number;
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly tty: boolean;
  private readonly every: number;
  private readonly now: () => number;
  private bar?: cliProgress.SingleBar;
  private start?: { t: number; step: number };

  constructor(o: ProgressOptions) {
    this.total = o.total;
    this.stream = o.stream ?? process.stderr;
    this.tty = o.tty ?? Boolean(this.stream.isTTY);
    this.every = o.every ?? Math.max(1, Math.round(o.total / 20));
    this.now = o.now ?? (() => performance.now());
  }

  /** Seconds left, from this session's average time per step. */
  private eta(step: number): number {
    if (!this.start || step <= this.start.step) return NaN;
    const perStep = (this.now() - this.start.t) / 1000 / (step - this.start.step);
    return perStep * (this.total - step);
  }

  /** Show one completed update. */
  step(rec: TrainRecord): void {
    if (!this.start) this.start = { t: this.now() - rec.elapsedSec * 1000, step: rec.step - 1 };
    const eta = this.eta(rec.step);
    if (this.tty) {
      const payload = {
        loss: rec.loss.toFixed(4),
        lr: formatLr(rec.lr),
        tps: String(Math.round(rec.tokensPerSec)),
        eta: formatDuration(eta),
      };
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            // Compact enough for an 80-column terminal (cli-progress truncates longer lines).
            format: '{bar} {value}/{total} loss {loss} lr {lr} {tps} tok/s eta {eta}',
            stream: this.stream,
            hideCursor: true,
            clearOnComplete: false,
            barsize: 16,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(this.total, rec.step, payload);
      } else {
        this.bar.update(rec.step, payload);
      }
      return;
    }
    if (rec.step === 1 || rec.step % this.every === 0 || rec.step === this.total || rec.step === this.start.step + 1) {
      this.stream.write(formatStepLine(rec, this.total, eta) + '\n');
    }
  }

  /** Print an evaluation result on its own line (above the bar on a terminal). */
  evaluation(rec: EvalRecord): void {
    this.message(formatEvalLine(rec));
  }

  /** Print a line without breaking the bar. */
  message(line: string): void {
    if (this.bar) this.stream.write('\r\x1b[2K' + line + '\n');
    else this.stream.write(line + '\n');
  }

  /** Finish the bar (leaves the last state visible). */
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
