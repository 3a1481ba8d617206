/**
 * What the side-by-side benchmarks share: finding a Python with PyTorch 2.x (the baseline),
 * running one side in its own process (so its peak RSS is its own) and reading the JSON line it
 * prints last, and the peak RSS of the current process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** A Python whose torch is 2.x (with transformers), or why there is none. */
export function findTorchPython(): { python?: string; version?: string; why?: string } {
  if (process.env.BENCH_TORCH === '0') return { why: 'BENCH_TORCH=0' };
  const python = process.env.MOR_TORCH_PYTHON || 'python3';
  const r = spawnSync(python, ['-c', 'import torch, transformers; print(torch.__version__)'], { encoding: 'utf8' });
  const v = r.stdout?.trim() ?? '';
  if (r.status !== 0 || !/^[2-9]\./.test(v)) return { why: `${python}: no torch 2.x with transformers (${v || r.stderr?.trim().split('\n').pop()})` };
  return { python, version: v };
}

/**
 * Run `cmd args` with stderr passed through; its last stdout line is a JSON object. A child that
 * fails or prints no JSON gives `{ error }` (exit status or signal).
 */
export function runJsonChild<T extends object>(cmd: string, args: string[], env: Record<string, string>, timeoutMs: number): T | { error: string } {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 26,
    env: { ...process.env, MOR_QUIET: '1', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = r.stdout?.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    return { error: r.error ? r.error.message : `exit ${r.status ?? r.signal}` };
  }
}

/** Peak resident set size of this process (VmHWM), GiB. */
export function peakRssGiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}
