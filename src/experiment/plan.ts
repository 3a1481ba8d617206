/**
 * Expands an experiment config into the list of runs: the main comparison (every method at
 * every seed, seed-major so that a partial run covers all methods at the first seed), then the
 * ablation points, then the held-out-task runs. With learning-rate grids, the grid runs come
 * first ({@link planGridRuns}); a setting's comparison runs are planned once its rate is chosen
 * (lrSelection.ts), so `planRuns` takes the chosen rates. Budget matching and `alphaRatio` are resolved here, so every run carries its
 * final adapter config; a run's id hashes everything that determines its result, so finished
 * runs are found again (and a changed setting re-runs).
 */
import { createHash } from 'node:crypto';
import { parseAdapterConfig, type AdapterConfig } from '../adapters/config.ts';
import { adapterKind, adapterKinds } from '../adapters/registry.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { pushAll } from '../util/array.ts';
import { formulaTrainableParameters, matchRank } from './budget.ts';
import { lrGridOf, type ExperimentConfig, type MethodSpec, type TrainSettings } from './config.ts';

/** Which table a run belongs to. */
export type RunGroup = 'main' | 'experts' | 'ranks' | 'routers' | 'grid' | 'heldout';

/** One planned run. */
export interface RunSpec {
  /** Stable id: `<label>-s<seed>-<hash>`; the cache folder name. */
  id: string;
  /** Tables the run appears in, with its row label there: the method name (main) or the ablation point (`N=4`, `r=16`, `uniform`). An ablation point equal to a main run is that run. */
  memberships: { group: RunGroup; label: string }[];
  /** The method the run derives from. */
  method: string;
  seed: number;
  adapter: AdapterConfig;
  train: TrainSettings;
  /** MoR static-routing merge measured on this run. */
  staticRouting: boolean;
  /** How the rank was chosen (budget matching), for the report. */
  budgetNote?: string;
  /** A learning-rate grid run: scored on `selectData` (validation), not on `evalData`. */
  split?: 'validation';
  /** A held-out run: trained without these tasks, scored on them alone. */
  heldOut?: { group: string; tasks: string[] };
}

/**
 * One configuration whose learning rate is chosen: a main method (key = its name) or an
 * ablation point (key `experts:N=4`).
 */
export interface Setting {
  key: string;
  group: RunGroup;
  label: string;
  method: MethodSpec;
  adapter: AdapterConfig;
  budgetNote?: string;
  /** Its learning-rate grid (none: `train.lr`, one value: that rate). */
  grid?: number[];
}

/** Resolve a method's raw adapter: `r` (when given), then alpha = alphaRatio * r when absent. */
function resolveAdapter(raw: Record<string, unknown>, alphaRatio: number, r?: number): AdapterConfig {
  const a: Record<string, unknown> = { ...raw };
  if (r !== undefined) a.r = r;
  if (adapterKinds().find((k) => k.kind === a.kind)?.lowRank !== false && a.alpha === undefined) a.alpha = alphaRatio * ((a.r as number | undefined) ?? 8);
  return parseAdapterConfig(a, `adapter of a run`);
}

/** The resolved adapter of every method, with its budget-matching note. */
export function resolveMethods(c: ExperimentConfig, model: LlamaConfig): Map<string, { adapter: AdapterConfig; note?: string }> {
  const out = new Map<string, { adapter: AdapterConfig; note?: string }>();
  for (const m of c.methods) if (m.matchBudget === undefined) out.set(m.name, { adapter: resolveAdapter(m.adapter, c.alphaRatio) });
  for (const m of c.methods) {
    if (m.matchBudget === undefined) continue;
    const ref = out.get(m.matchBudget)!;
    const target = formulaTrainableParameters(model, ref.adapter);
    const probe = resolveAdapter(m.adapter, c.alphaRatio, 1);
    const { r, count } = matchRank(model, probe, target);
    const adapter = resolveAdapter(m.adapter, c.alphaRatio, r);
    const what = adapterKind(adapter.kind).rankText?.(r) ?? `r=${r}`;
    out.set(m.name, {
      adapter,
      note: `${what}: ${count.toLocaleString('en-US')} trainable vs ${target.toLocaleString('en-US')} for ${m.matchBudget} (closest integer rank)`,
    });
  }
  return out;
}

function trainOf(c: ExperimentConfig, m: MethodSpec): TrainSettings {
  return { ...c.train, ...(m.train ?? {}) };
}

/** A short hash of everything that determines a run's result. */
export function runHash(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 10);
}

/** Every setting of the comparison: the main methods, then the ablation points (config order). */
export function planSettings(c: ExperimentConfig, model: LlamaConfig): Setting[] {
  const methods = resolveMethods(c, model);
  const out: Setting[] = c.methods.map((m) => ({
    key: m.name, group: 'main', label: m.name, method: m, adapter: methods.get(m.name)!.adapter, budgetNote: methods.get(m.name)!.note, grid: lrGridOf(c, m),
  }));
  const ab = c.ablations;
  if (ab) {
    const m = c.methods.find((x) => x.name === ab.of)!;
    const point = (group: RunGroup, label: string, patch: Record<string, unknown>): Setting => ({
      key: `${group}:${label}`, group, label, method: m, adapter: resolveAdapter({ ...m.adapter, ...patch }, c.alphaRatio), grid: lrGridOf(c, m),
    });
    for (const n of ab.experts) out.push(point('experts', `N=${n}`, { numExperts: n }));
    for (const r of ab.ranks) out.push(point('ranks', `r=${r}`, { r }));
    for (const mode of ab.routers) out.push(point('routers', mode, { routerMode: mode }));
  }
  return out;
}

/**
 * A setting's training settings: its method's, at the chosen rate when it has a grid;
 * undefined while the choice is not made (its grid runs are not all finished).
 */
export function settingTrain(c: ExperimentConfig, s: Setting, rates: ReadonlyMap<string, number>): TrainSettings | undefined {
  const train = trainOf(c, s.method);
  if (!s.grid) return train;
  const lr = s.grid.length === 1 ? s.grid[0] : rates.get(s.key);
  return lr === undefined ? undefined : { ...train, lr };
}

/** Collects runs, merging a run planned twice (same hash) into one with both memberships. */
class RunList {
  readonly runs: RunSpec[] = [];
  private byHash = new Map<string, RunSpec>();

  add(parts: Record<string, unknown>, idLabel: string, spec: Omit<RunSpec, 'id'>): void {
    const hash = runHash(parts);
    const same = this.byHash.get(hash);
    if (same) {
      pushAll(same.memberships, spec.memberships);
      same.staticRouting ||= spec.staticRouting;
      return;
    }
    const id = `${spec.method}-${idLabel.replace(/[^A-Za-z0-9_-]/g, '')}-s${spec.seed}-${hash}`.replace(/^(\w+)-\1-/, '$1-');
    const run: RunSpec = { id, ...spec, memberships: [...spec.memberships] };
    this.byHash.set(hash, run);
    this.runs.push(run);
  }
}

/**
 * The learning-rate grid runs: every setting whose grid has two or more rates, at each rate, at
 * `selectSeed`, scored on `selectData`. `selectFingerprint` is the fingerprint with the
 * validation file in place of the test file; a grid point shared by two settings (an ablation
 * point equal to its main method) is one run.
 */
export function planGridRuns(c: ExperimentConfig, model: LlamaConfig, selectFingerprint: string): RunSpec[] {
  const list = new RunList();
  const seed = c.selectSeed;
  for (const s of planSettings(c, model)) {
    if (!s.grid || s.grid.length < 2) continue;
    for (const lr of s.grid) {
      const train = { ...trainOf(c, s.method), lr };
      list.add({ fingerprint: selectFingerprint, adapter: s.adapter, train, seed }, `${s.label}-lr${lr}`, {
        memberships: [{ group: 'grid', label: s.key }], method: s.method.name, seed, adapter: s.adapter, train, staticRouting: false, split: 'validation',
      });
    }
  }
  return list.runs;
}

/** Options of {@link planRuns}. */
export interface PlanOptions {
  /** Replace the main seeds (ablations and held-out runs then use the first). */
  seeds?: number[];
  /** Chosen learning rates by setting key (lrSelection.ts); settings with a grid and no entry are left out. */
  rates?: ReadonlyMap<string, number>;
}

/**
 * Every comparison run of the experiment, in execution order. `fingerprint` identifies the
 * model and data (their content hashes) and evaluation settings; it enters every run id. A run
 * without a grid hashes exactly the parts it always did, so existing caches stay valid.
 */
export function planRuns(c: ExperimentConfig, model: LlamaConfig, fingerprint: string, opts: PlanOptions = {}): RunSpec[] {
  const settings = planSettings(c, model);
  const rates = opts.rates ?? new Map<string, number>();
  const list = new RunList();
  const add = (s: Setting, seed: number, staticRouting: boolean): void => {
    const train = settingTrain(c, s, rates);
    if (!train) return;
    // staticRouting only adds measurements: it is not part of the identity.
    list.add({ fingerprint, adapter: s.adapter, train, seed }, s.label, {
      memberships: [{ group: s.group, label: s.label }], method: s.method.name, seed, adapter: s.adapter, train, staticRouting, budgetNote: s.budgetNote,
    });
  };
  const seeds = opts.seeds ?? c.seeds;
  const staticOf = c.staticRouting?.of;
  // From the config, not from a --seeds override: a partial call on other seeds never owes the
  // static-routing measurements of the configured seed.
  const staticSeeds = new Set(c.staticRouting?.seeds ?? [c.seeds[0]]);
  const main = settings.filter((s) => s.group === 'main');
  for (const seed of seeds) for (const s of main) add(s, seed, s.key === staticOf && staticSeeds.has(seed));
  if (c.ablations) {
    const abSeeds = opts.seeds ? opts.seeds.slice(0, 1) : (c.ablations.seeds ?? [c.seeds[0]]);
    for (const seed of abSeeds) for (const s of settings) if (s.group !== 'main') add(s, seed, false);
  }
  const h = c.heldOut;
  if (h) {
    const hSeeds = opts.seeds ? opts.seeds.slice(0, 1) : (h.seeds ?? [c.seeds[0]]);
    for (const seed of hSeeds) {
      for (const [group, tasks] of Object.entries(h.groups)) {
        for (const s of main) {
          if (h.methods && !h.methods.includes(s.key)) continue;
          const train = settingTrain(c, s, rates);
          if (!train) continue;
          const heldOut = { group, tasks };
          list.add({ fingerprint, adapter: s.adapter, train, seed, heldOut }, `heldout-${group}`, {
            memberships: [{ group: 'heldout', label: `${group}/${s.label}` }], method: s.method.name, seed, adapter: s.adapter, train, staticRouting: false, heldOut,
          });
        }
      }
    }
  }
  return list.runs;
}

/** Settings whose rate is not chosen yet (grid of two or more rates, no entry in `rates`). */
export function waitingSettings(c: ExperimentConfig, model: LlamaConfig, rates: ReadonlyMap<string, number>): Setting[] {
  return planSettings(c, model).filter((s) => settingTrain(c, s, rates) === undefined);
}
