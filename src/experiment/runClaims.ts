/**
 * Claims on planned runs, so that several `mor experiment` processes on one output folder split
 * the work instead of training the same run twice. A process claims a run by creating
 * `<runDir>/claim.json` exclusively (flag `wx`: the file system decides which process wins) and
 * removes it when the run's result is written. A claim left by a process that no longer exists on
 * this host (killed, crashed) is stale and is taken over.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** What a claim file records. */
export interface RunClaim {
  pid: number;
  host: string;
  since: string;
}

const CLAIM_FILE = 'claim.json';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readClaim(file: string): RunClaim | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunClaim;
  } catch {
    return undefined; // gone, or being written: treated as "no readable claim"
  }
}

/**
 * Whether another live process holds the run in `runDir`. Claims from other hosts count as
 * live (their processes cannot be checked from here); our own claim does not count.
 */
export function claimedByOther(runDir: string): boolean {
  const c = readClaim(path.join(runDir, CLAIM_FILE));
  if (!c || c.pid === process.pid && c.host === os.hostname()) return false;
  return c.host !== os.hostname() || processAlive(c.pid);
}

/** Try to claim the run in `runDir`; false when another live process holds it. */
export function claimRun(runDir: string): boolean {
  fs.mkdirSync(runDir, { recursive: true });
  const file = path.join(runDir, CLAIM_FILE);
  const mine: RunClaim = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, JSON.stringify(mine) + '\n', { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const c = readClaim(file);
      if (c && c.pid === process.pid && c.host === os.hostname()) return true;
      if (!c || c.host !== os.hostname() || processAlive(c.pid)) return false;
      fs.rmSync(file, { force: true }); // stale: its process is gone; retry the exclusive create once
    }
  }
  return false;
}

/** Remove our claim on the run in `runDir` (after its result is written, or when it failed). */
export function releaseRun(runDir: string): void {
  const file = path.join(runDir, CLAIM_FILE);
  const c = readClaim(file);
  if (c && c.pid === process.pid && c.host === os.hostname()) fs.rmSync(file, { force: true });
}
