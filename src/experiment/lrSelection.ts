/**
 * Learning-rate selection: each setting (a main method or an ablation point) with a grid of two
 * or more rates is trained once per rate at the selection seed and scored on the validation split
 * (plan.ts `planGridRuns`); the rate with the best average validation accuracy is chosen, ties
 * going to the smaller rate (the more conservative update; accuracies are fractions of item
 * counts, so equal means exactly equal). The comparison's runs then train at the chosen rate and
 * are scored on the test split. Nothing is chosen until every rate of the grid has finished.
 */
import type { RunSpec } from './plan.ts';

/** One grid point's score: average validation accuracy, undefined while the run is not done. */
export interface GridScore {
  lr: number;
  accuracy?: number;
  /** The grid run's id (its cache folder). */
  run: string;
}

/** The grid of one setting and its choice. */
export interface RateChoice {
  /** Setting key (method name, or `experts:N=4` for an ablation point). */
  key: string;
  scores: GridScore[];
  /** The chosen rate; undefined until every grid point has a score. */
  lr?: number;
}

/** The best rate of complete `scores` (ties: the smaller rate); undefined when one is missing. */
export function pickRate(scores: readonly { lr: number; accuracy?: number }[]): number | undefined {
  if (scores.length === 0 || scores.some((s) => s.accuracy === undefined || !Number.isFinite(s.accuracy))) return undefined;
  let best = scores[0];
  for (const s of scores) {
    if (s.accuracy! > best.accuracy! || (s.accuracy === best.accuracy && s.lr < best.lr)) best = s;
  }
  return best.lr;
}

/**
 * Every setting's grid, scored from the finished grid runs (`accuracy` by run id), with its
 * choice; settings in the order of their first grid run, rates ascending.
 */
export function chooseRates(gridRuns: readonly RunSpec[], accuracy: ReadonlyMap<string, number>): RateChoice[] {
  const bySetting = new Map<string, GridScore[]>();
  for (const run of gridRuns) {
    for (const m of run.memberships) {
      if (m.group !== 'grid') continue;
      const list = bySetting.get(m.label) ?? bySetting.set(m.label, []).get(m.label)!;
      list.push({ lr: run.train.lr, accuracy: accuracy.get(run.id), run: run.id });
    }
  }
  return [...bySetting].map(([key, scores]) => {
    scores.sort((x, y) => x.lr - y.lr);
    return { key, scores, lr: pickRate(scores) };
  });
}

/** The chosen rates by setting key (the settings whose grid is complete). */
export function ratesOf(choices: readonly RateChoice[]): Map<string, number> {
  return new Map(choices.filter((c) => c.lr !== undefined).map((c) => [c.key, c.lr!]));
}
