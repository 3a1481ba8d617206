/**
 * Expands an experiment config into the list of runs: the main comparison (every method at
 * every seed, seed-major so that a partial run covers all methods at the first seed), then the
 * ablation points. Budget matching and `alphaRatio` are resolved here, so every run carries its
 * final adapter config; a run's id hashes everything that determines its result, so finished
 * runs are found again (and a changed setting re-runs).
 */
import { createHash } from 'node:crypto';
import { parseAdapterConfig, type AdapterConfig } from '../adapters/config.ts';
import { adapterKind, adapterKinds } from '../adapters/registry.ts';
import type { LlamaConfig } from '../models/llama/config.ts';
import { formulaTrainableParameters, matchRank } from './budget.ts';
import type { ExperimentConfig, MethodSpec, TrainSettings } from './config.ts';

/** Which table a run belongs to. */
export type RunGroup = 'main' | 'experts' | 'ranks' | 'routers';

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

/**
 * Every run of the experiment, in execution order. `fingerprint` identifies the model and data
 * (their content hashes) and evaluation settings; it enters every run id.
 */
export function planRuns(c: ExperimentConfig, model: LlamaConfig, fingerprint: string, opts: { seeds?: number[] } = {}): RunSpec[] {
  const methods = resolveMethods(c, model);
  const runs: RunSpec[] = [];
  const byHash = new Map<string, RunSpec>();
  const add = (group: RunGroup, label: string, m: MethodSpec, seed: number, adapter: AdapterConfig, staticRouting: boolean, budgetNote?: string): void => {
    const train = trainOf(c, m);
    // staticRouting only adds measurements: it is not part of the identity.
    const hash = runHash({ fingerprint, adapter, train, seed });
    const same = byHash.get(hash);
    if (same) {
      same.memberships.push({ group, label });
      same.staticRouting ||= staticRouting;
      return;
    }
    const id = `${m.name}-${label.replace(/[^A-Za-z0-9_-]/g, '')}-s${seed}-${hash}`.replace(/^(\w+)-\1-/, '$1-');
    const spec: RunSpec = { id, memberships: [{ group, label }], method: m.name, seed, adapter, train, staticRouting, budgetNote };
    byHash.set(hash, spec);
    runs.push(spec);
  };
  const seeds = opts.seeds ?? c.seeds;
  const staticOf = c.staticRouting?.of;
  // From the config, not from a --seeds override: a partial call on other seeds never owes the
  // static-routing measurements of the configured seed.
  const staticSeeds = new Set(c.staticRouting?.seeds ?? [c.seeds[0]]);
  for (const seed of seeds) {
    for (const m of c.methods) {
      const r = methods.get(m.name)!;
      add('main', m.name, m, seed, r.adapter, m.name === staticOf && staticSeeds.has(seed), r.note);
    }
  }
  const ab = c.ablations;
  if (ab) {
    const m = c.methods.find((x) => x.name === ab.of)!;
    const abSeeds = opts.seeds ? opts.seeds.slice(0, 1) : (ab.seeds ?? [c.seeds[0]]);
    const variant = (patch: Record<string, unknown>): AdapterConfig => {
      const raw = { ...m.adapter, ...patch };
      return resolveAdapter(raw, c.alphaRatio);
    };
    for (const seed of abSeeds) {
      for (const n of ab.experts) add('experts', `N=${n}`, m, seed, variant({ numExperts: n }), false);
      for (const r of ab.ranks) add('ranks', `r=${r}`, m, seed, variant({ r }), false);
      for (const mode of ab.routers) add('routers', mode, m, seed, variant({ routerMode: mode }), false);
    }
  }
  return runs;
}
