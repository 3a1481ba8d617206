/**
 * Training checkpoints that never lose work.
 *
 * Layout of `<checkpointDir>`:
 * ```
 * checkpoint-<step>/params.safetensors      trainable parameters (F32, by dotted name)
 * checkpoint-<step>/optimizer.safetensors   AdamW moments: `exp_avg.<name>`, `exp_avg_sq.<name>`
 * checkpoint-<step>/trainer_state.json      step, optimizer step, RNG, data position, loss log
 * latest                                    the name of the newest complete checkpoint
 * ```
 * A checkpoint is written into `checkpoint-<step>.tmp/`, every file fsynced, the directory
 * renamed to `checkpoint-<step>/`, and only then is `latest` replaced atomically. A crash at
 * any point leaves `latest` naming a complete checkpoint; `.tmp` directories are never read
 * and are removed by the next save.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSafetensors, writeSafetensors, type HostTensor } from '../io/safetensors.ts';
import { fsyncDirSync, writeFileAtomicSync } from '../io/atomic.ts';
import { UserError } from '../errors.ts';
import { assertFinite } from '../io/finite.ts';
import type { AdamWState, MomentArray } from './adamw.ts';
import type { MetricRecord } from './metrics.ts';

/** Version of `trainer_state.json`. */
export const CHECKPOINT_FORMAT = 1;

/** Everything needed to continue a run exactly. */
export interface CheckpointData {
  /** Updates completed. */
  step: number;
  /** Trainable parameters by name (F32). */
  params: Map<string, HostTensor>;
  optimizer: AdamWState;
  /** State of the trainer's seed generator ({@link Rng.getState}). */
  rngState: number[];
  /** Data iterator position (its `getState()`), JSON-serialisable. */
  dataState: unknown;
  /** Every record so far. */
  log: MetricRecord[];
  /** Free-form JSON saved alongside (run settings, for humans and checks). */
  info?: Record<string, unknown>;
}

interface TrainerStateJson {
  format: number;
  step: number;
  optimizerStep: number;
  rngState: number[];
  dataState: unknown;
  paramNames: string[];
  log: MetricRecord[];
  info?: Record<string, unknown>;
}

const CKPT_RE = /^checkpoint-(\d+)$/;
const TMP_RE = /^checkpoint-(\d+)\.tmp$/;
const STATE_FILE = 'trainer_state.json';
const PARAMS_FILE = 'params.safetensors';
const OPT_FILE = 'optimizer.safetensors';

/** Name of the directory of the checkpoint at `step`. */
export function checkpointName(step: number): string {
  return `checkpoint-${step}`;
}

function moment(a: MomentArray): HostTensor {
  return { dtype: 'F32', shape: [...a.shape], data: a.data };
}

/**
 * Write a checkpoint atomically and prune old ones, keeping the newest `keep` (default 3).
 * Returns the checkpoint's directory.
 */
export async function saveCheckpoint(dir: string, data: CheckpointData, keep = 3): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const name = checkpointName(data.step);
  const final = path.join(dir, name);
  const tmp = `${final}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp);

  await writeSafetensors(path.join(tmp, PARAMS_FILE), data.params, { metadata: { format: 'pt' } });
  const opt = new Map<string, HostTensor>();
  for (const [k, a] of data.optimizer.m) opt.set(`exp_avg.${k}`, moment(a));
  for (const [k, a] of data.optimizer.v) opt.set(`exp_avg_sq.${k}`, moment(a));
  await writeSafetensors(path.join(tmp, OPT_FILE), opt, { metadata: { step: String(data.optimizer.step) } });
  const state: TrainerStateJson = {
    format: CHECKPOINT_FORMAT,
    step: data.step,
    optimizerStep: data.optimizer.step,
    rngState: data.rngState,
    dataState: data.dataState,
    paramNames: [...data.params.keys()],
    log: data.log,
    ...(data.info ? { info: data.info } : {}),
  };
  // Written last: a directory without it is never a checkpoint.
  writeFileAtomicSync(path.join(tmp, STATE_FILE), JSON.stringify(state));
  fsyncDirSync(tmp);

  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  fsyncDirSync(dir);
  writeFileAtomicSync(path.join(dir, 'latest'), name + '\n');
  pruneCheckpoints(dir, keep, name);
  return final;
}

/** Steps of the complete-looking checkpoint directories in `dir`, ascending. */
export function listCheckpoints(dir: string): number[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((n) => CKPT_RE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .filter((s) => fs.existsSync(path.join(dir, checkpointName(s), STATE_FILE)))
    .sort((a, b) => a - b);
}

/** Remove all but the newest `keep` checkpoints (never `protect`) and any `.tmp` leftovers. */
function pruneCheckpoints(dir: string, keep: number, protect: string): void {
  const steps = listCheckpoints(dir);
  const drop = steps.slice(0, Math.max(0, steps.length - Math.max(1, keep)));
  for (const s of drop) {
    const n = checkpointName(s);
    if (n !== protect) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
  for (const n of fs.readdirSync(dir)) {
    if (TMP_RE.test(n)) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
  }
}

/** Load one checkpoint directory; throws UserError naming the file if it is incomplete. */
export async function loadCheckpoint(ckptDir: string): Promise<CheckpointData> {
  const stateFile = path.join(ckptDir, STATE_FILE);
  let state: TrainerStateJson;
  try {
    state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as TrainerStateJson;
  } catch (e) {
    throw new UserError(`${stateFile}: cannot read checkpoint state (${(e as Error).message})`);
  }
  if (state.format !== CHECKPOINT_FORMAT || !Number.isInteger(state.step) || !Array.isArray(state.rngState)) {
    throw new UserError(`${stateFile}: not a trainer state of format ${CHECKPOINT_FORMAT}`);
  }
  const params = (await readSafetensors(path.join(ckptDir, PARAMS_FILE))).tensors;
  for (const n of state.paramNames) {
    const t = params.get(n);
    if (!t) throw new UserError(`${path.join(ckptDir, PARAMS_FILE)}: missing tensor "${n}"`);
    // The trainer never applies a non-finite update, so NaN/Inf here means a damaged file.
    assertFinite(n, path.join(ckptDir, PARAMS_FILE), t.data as Float32Array);
  }
  const optFile = path.join(ckptDir, OPT_FILE);
  const opt = (await readSafetensors(optFile)).tensors;
  const m = new Map<string, MomentArray>();
  const v = new Map<string, MomentArray>();
  for (const n of state.paramNames) {
    for (const [prefix, into] of [['exp_avg', m], ['exp_avg_sq', v]] as const) {
      const t = opt.get(`${prefix}.${n}`);
      if (!t || !(t.data instanceof Float32Array)) throw new UserError(`${optFile}: missing F32 tensor "${prefix}.${n}"`);
      assertFinite(`${prefix}.${n}`, optFile, t.data);
      into.set(n, { shape: t.shape, data: t.data });
    }
  }
  return {
    step: state.step,
    params,
    optimizer: { step: state.optimizerStep, m, v },
    rngState: state.rngState,
    dataState: state.dataState,
    log: state.log ?? [],
    ...(state.info ? { info: state.info } : {}),
  };
}

/** A checkpoint directory that could not be loaded, and why (for a warning). */
export interface SkippedCheckpoint {
  path: string;
  reason: string;
}

/**
 * The newest complete checkpoint in `dir` — the one `latest` names when it loads, else the
 * highest-step directory that loads — and every checkpoint directory passed over on the way
 * because it is damaged (unreadable state, missing or non-finite tensors). `found` is undefined
 * when none loads. Incomplete `.tmp` directories are never checkpoints and are not reported.
 */
export async function findLatestCheckpoint(
  dir: string,
): Promise<{ found?: { path: string; data: CheckpointData }; skipped: SkippedCheckpoint[] }> {
  const tried = new Set<string>();
  const skipped: SkippedCheckpoint[] = [];
  const attempt = async (p: string): Promise<{ path: string; data: CheckpointData } | undefined> => {
    tried.add(p);
    try {
      return { path: p, data: await loadCheckpoint(p) };
    } catch (e) {
      skipped.push({ path: p, reason: (e as Error).message });
      return undefined;
    }
  };
  const pointer = path.join(dir, 'latest');
  if (fs.existsSync(pointer)) {
    const name = fs.readFileSync(pointer, 'utf8').trim();
    if (CKPT_RE.test(name) && fs.existsSync(path.join(dir, name))) {
      // A damaged pointer target must not stop a resume: fall through to scanning.
      const found = await attempt(path.join(dir, name));
      if (found) return { found, skipped };
    }
  }
  // Every checkpoint-N directory, newest first (also those without a state file: damaged).
  const steps = fs.existsSync(dir)
    ? fs.readdirSync(dir).map((n) => CKPT_RE.exec(n)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1]))
    : [];
  for (const s of steps.sort((a, b) => b - a)) {
    const p = path.join(dir, checkpointName(s));
    if (tried.has(p)) continue;
    const found = await attempt(p);
    if (found) return { found, skipped };
  }
  return { skipped };
}

/**
 * The newest complete checkpoint in `dir` (see {@link findLatestCheckpoint}, which also reports
 * the damaged ones it skipped). `undefined` when there is none.
 */
export async function loadLatestCheckpoint(dir: string): Promise<{ path: string; data: CheckpointData } | undefined> {
  return (await findLatestCheckpoint(dir)).found;
}
