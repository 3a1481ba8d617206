/**
 * How long an experiment took: every `mor experiment` call on an output folder records its time
 * span in `<outDir>/calls/<start>-<pid>.json` (one file per call, so concurrent calls never
 * overwrite each other), updated whenever the report is rewritten. The report's wall clock is
 * the union of these spans (concurrent calls count once), next to the sum of the runs' own
 * wall times.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.ts';

/** One call's record. */
export interface CallSpan {
  /** Epoch milliseconds. */
  start: number;
  end: number;
  /** Runs trained by this call. */
  executed: number;
}

/** The current call: `update()` rewrites its file with `end` = now. */
export interface CallRecorder {
  executed: number;
  update(): void;
}

/** Start recording this call under `<outDir>/calls/`. */
export function startCall(outDir: string, now: () => number = Date.now): CallRecorder {
  const start = now();
  const file = path.join(outDir, 'calls', `${new Date(start).toISOString().replace(/[:.]/g, '-')}-${process.pid}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const rec: CallRecorder = {
    executed: 0,
    update: () => writeFileAtomicSync(file, JSON.stringify({ start, end: now(), executed: rec.executed } satisfies CallSpan) + '\n'),
  };
  rec.update();
  return rec;
}

/** Every recorded call of `outDir` (unreadable files skipped), by start time. */
export function readCalls(outDir: string): CallSpan[] {
  const dir = path.join(outDir, 'calls');
  if (!fs.existsSync(dir)) return [];
  const out: CallSpan[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json'))) {
    try {
      const c = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as CallSpan;
      if (Number.isFinite(c.start) && Number.isFinite(c.end)) out.push(c);
    } catch {
      // a torn file: skip it (writes are atomic, so this should not happen)
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** Milliseconds covered by the union of the spans (overlapping calls count once). */
export function unionMs(spans: readonly { start: number; end: number }[]): number {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let total = 0;
  let curStart = Number.NaN;
  let curEnd = Number.NaN;
  for (const s of sorted) {
    if (!(s.start <= curEnd)) {
      if (Number.isFinite(curStart)) total += curEnd - curStart;
      curStart = s.start;
      curEnd = s.end;
    } else curEnd = Math.max(curEnd, s.end);
  }
  if (Number.isFinite(curStart)) total += curEnd - curStart;
  return total;
}

/** `2 h 05 min`, `3 min 20 s`, `12 s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '-';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}
