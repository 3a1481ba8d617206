/**
 * Learning-rate schedules as a pure function of the update number, like nanoGPT's
 * `get_lr(it)`: linear warmup, then cosine or linear decay to `minLr`, or constant.
 */

/** Shape of the decay after warmup. */
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleConfig {
  /** Peak learning rate, reached at the end of warmup. */
  lr: number;
  /** Number of warmup updates (linear ramp from lr/warmupSteps to lr). Default 0. */
  warmupSteps?: number;
  /** Total number of updates of the run (the decay ends at this step). */
  totalSteps: number;
  /** Decay after warmup. Default `cosine`. */
  kind?: ScheduleKind;
  /** Learning rate at the end of the decay. Default 0. */
  minLr?: number;
}

/**
 * Learning rate for update number `step` (1-based: the first optimizer update is step 1).
 *
 * - warmup (`step <= warmupSteps`): `lr * step / warmupSteps`, so the first update is not
 *   wasted with lr 0 (unlike a 0-based ramp);
 * - then, with progress `p = (step - warmupSteps) / (totalSteps - warmupSteps)` in [0, 1]:
 *   cosine `minLr + (lr - minLr) * (1 + cos(pi p)) / 2`, linear `lr + (minLr - lr) p`,
 *   constant `lr`. Steps past `totalSteps` keep the final value.
 */
export function lrAt(step: number, cfg: ScheduleConfig): number {
  const warmup = Math.max(0, cfg.warmupSteps ?? 0);
  const kind = cfg.kind ?? 'cosine';
  const minLr = cfg.minLr ?? 0;
  if (step < 1) throw new RangeError(`lrAt: step must be >= 1 (got ${step})`);
  if (warmup > 0 && step <= warmup) return (cfg.lr * step) / warmup;
  if (kind === 'constant') return cfg.lr;
  const span = cfg.totalSteps - warmup;
  const p = span <= 0 ? 1 : Math.min(1, (step - warmup) / span);
  if (kind === 'linear') return cfg.lr + (minLr - cfg.lr) * p;
  return minLr + ((cfg.lr - minLr) * (1 + Math.cos(Math.PI * p))) / 2;
}
