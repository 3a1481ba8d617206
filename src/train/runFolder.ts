/**
 * The run-folder policy of `mor train`: decided before anything is written, so a refused run
 * leaves every existing file byte-identical.
 *
 * - A new run needs an empty (or absent) `outDir`. A non-empty one is refused unless
 *   `--resume` (continue the run there) or `--overwrite` (replace it). `--overwrite` removes only
 *   what `mor train` writes ({@link RUN_OUTPUTS}), after every input has been validated, and
 *   refuses a folder that also holds other files: it never mixes an old run's checkpoints,
 *   adapter or plots with a new one's.
 * - `--resume` loads the newest checkpoint that loads (warning about any damaged one skipped),
 *   compares the config the checkpoint was trained with (stored in it, else the folder's
 *   `train_config.json`) with the new one, and refuses every difference that changes the
 *   training, naming the fields. {@link RESUME_SAFE_KEYS} may differ: more (or fewer, not below
 *   the checkpoint) steps, evaluation and logging settings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors.ts';
import { checkOutputDir } from '../io/outputPath.ts';
import { findLatestCheckpoint, type CheckpointData, type SkippedCheckpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { pushAll } from '../util/array.ts';

/** Entries of a run folder written by `mor train` (see run.ts); `--overwrite` removes these only. */
export const RUN_OUTPUTS: readonly string[] = [
  'train_config.json', 'metrics.jsonl', 'loss.svg', 'routing.svg', 'routing.json', 'checkpoints', 'adapter', 'eval',
];

/**
 * Config keys that may differ on `--resume`: they change how long the run goes on, what is
 * evaluated, logged and kept, not the updates already made nor the next ones' arithmetic.
 * `steps` / `epochs` set the schedule's length: the learning rate after the resumed step follows
 * the new length (for `constant` schedules nothing changes).
 */
export const RESUME_SAFE_KEYS: readonly string[] = [
  'steps', 'epochs', 'evalData', 'evalEvery', 'finalEval', 'checkpointEvery', 'keepCheckpoints', 'logEvery', 'outDir',
];

/** A config field that differs between the stored run and the new command. */
export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
  /** Declared safe ({@link RESUME_SAFE_KEYS}). */
  safe: boolean;
}

/** What {@link planRunFolder} decided. */
export type RunFolderPlan =
  | {
    mode: 'fresh';
    /** Old run outputs to remove (with `--overwrite`) just before the first write. */
    remove: string[];
  }
  | {
    mode: 'resume';
    checkpoint: { path: string; data: CheckpointData };
    /** Damaged checkpoints passed over (newer than the one resumed from). */
    skipped: SkippedCheckpoint[];
    /** Safe differences from the stored config (the unsafe ones were refused). */
    changes: ConfigChange[];
  };

/** JSON with object keys sorted, so equal configs compare equal whatever their key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : x,
  ) ?? 'undefined';
}

const short = (v: unknown): string => {
  const s = v === undefined ? 'unset' : canonical(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

const isPlainObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/**
 * Fields of `to` that differ from `from`, by dotted key: nested objects (the adapter) are
 * compared field by field (`adapter.r`), arrays and scalars whole. `safe` follows the top-level key.
 */
export function diffConfigs(from: Record<string, unknown>, to: Record<string, unknown>, prefix = ''): ConfigChange[] {
  const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])];
  const out: ConfigChange[] = [];
  for (const k of keys) {
    const a = from[k];
    const b = to[k];
    if (canonical(a) === canonical(b)) continue;
    const key = prefix + k;
    if (isPlainObject(a) && isPlainObject(b)) pushAll(out, diffConfigs(a, b, `${key}.`));
    else out.push({ key, from: a, to: b, safe: RESUME_SAFE_KEYS.includes(key.split('.')[0]) });
  }
  return out;
}

/** `lr 0.01 -> 0.02` for messages. */
export function describeChange(c: ConfigChange): string {
  return `${c.key} ${short(c.from)} -> ${short(c.to)}`;
}

/** Is `name` an atomic writer's leftover temporary file (`.<name>.<pid>.<hex>.tmp`)? */
const isTempFile = (name: string): boolean => name.startsWith('.') && name.endsWith('.tmp');

/** The config the stored run was trained with: from its checkpoint, else `train_config.json`. */
function storedConfig(outDir: string, data: CheckpointData): Record<string, unknown> {
  const inCheckpoint = data.info?.config;
  if (inCheckpoint && typeof inCheckpoint === 'object') return inCheckpoint as Record<string, unknown>;
  const file = path.join(outDir, 'train_config.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(
      `--resume: cannot check that ${outDir} holds the same run: its checkpoint records no config and ${file} cannot be read ` +
        `(${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}

/**
 * Decide what `mor train` may do with `config.outDir` (see the module comment). Reads only;
 * throws a {@link UserError} for every refusal.
 */
export async function planRunFolder(
  config: TrainConfig,
  opts: { resume?: boolean; overwrite?: boolean } = {},
): Promise<RunFolderPlan> {
  const outDir = config.outDir;
  if (opts.resume && opts.overwrite) throw new UserError('--resume continues the run in the output folder and --overwrite replaces it: give one of them');
  checkOutputDir(outDir, 'outDir');
  const entries = fs.existsSync(outDir) ? fs.readdirSync(outDir).filter((n) => !isTempFile(n)).sort() : [];

  if (!opts.resume) {
    if (entries.length === 0) return { mode: 'fresh', remove: [] };
    const listed = entries.slice(0, 4).map((n) => (fs.statSync(path.join(outDir, n)).isDirectory() ? `${n}/` : n)).join(', ');
    const more = entries.length > 4 ? `, ... (${entries.length} entries)` : '';
    if (!opts.overwrite) {
      throw new UserError(
        `${outDir}: the run folder is not empty (${listed}${more}); continue that run with --resume, replace it with --overwrite, or choose another outDir`,
      );
    }
    const foreign = entries.filter((n) => !RUN_OUTPUTS.includes(n));
    if (foreign.length > 0) {
      throw new UserError(
        `--overwrite: ${outDir} also holds ${foreign.slice(0, 4).join(', ')}${foreign.length > 4 ? ', ...' : ''}, which mor train did not write; ` +
          'it replaces run folders only (choose another outDir)',
      );
    }
    return { mode: 'fresh', remove: entries.map((n) => path.join(outDir, n)) };
  }

  const ckptDir = path.join(outDir, 'checkpoints');
  const { found, skipped } = await findLatestCheckpoint(ckptDir);
  if (!found) {
    const damaged = skipped.length ? ` (damaged: ${skipped.map((s) => `${path.basename(s.path)}: ${s.reason}`).join('; ')})` : '';
    throw new UserError(`--resume: ${ckptDir}: no complete checkpoint to resume from${damaged}; start the run again with --overwrite`);
  }
  const changes = diffConfigs(storedConfig(outDir, found.data), config as unknown as Record<string, unknown>);
  const unsafe = changes.filter((c) => !c.safe);
  if (unsafe.length > 0) {
    throw new UserError(
      `--resume: ${outDir} was trained with another config (${unsafe.map(describeChange).join('; ')}); ` +
        'these change the training, so the run cannot continue with them: keep the stored values, or start a new run (--overwrite or another outDir)',
    );
  }
  return { mode: 'resume', checkpoint: found, skipped, changes };
}

/**
 * The resumed checkpoint fits this run: the same trainable parameters with the same shapes, and
 * a step not beyond the run's length. Checked before anything is written.
 */
export function checkResumable(
  checkpoint: { path: string; data: CheckpointData },
  params: readonly [string, { shape: number[] }][],
  totalSteps: number,
): void {
  const file = path.join(checkpoint.path, 'params.safetensors');
  const names = new Set(params.map(([n]) => n));
  for (const n of checkpoint.data.params.keys()) {
    if (!names.has(n)) throw new UserError(`--resume: ${file}: tensor "${n}" is not a trainable parameter of this run`);
  }
  for (const [n, v] of params) {
    const t = checkpoint.data.params.get(n);
    if (!t) throw new UserError(`--resume: ${file}: missing trainable parameter "${n}"`);
    if (t.shape.length !== v.shape.length || t.shape.some((d, i) => d !== v.shape[i])) {
      throw new UserError(`--resume: ${file}: "${n}" has shape [${t.shape}], the model has [${v.shape}]`);
    }
  }
  const at = checkpoint.data.step;
  if (at > totalSteps) {
    throw new UserError(`--resume: ${checkpoint.path} is at step ${at}, beyond the ${totalSteps} updates of this config; give at least ${at} steps`);
  }
}

/** Carry out a fresh plan's removals (call after every input was validated, before the first write). */
export function clearRunFolder(plan: RunFolderPlan): void {
  if (plan.mode !== 'fresh') return;
  for (const p of plan.remove) fs.rmSync(p, { recursive: true, force: true });
}
