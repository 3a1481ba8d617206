/**
 * Loss curves of a run (train and eval) as SVG, from the trainer's metric records.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { MetricRecord } from '../train/metrics.ts';
import { renderVegaLiteSvg } from './render.ts';

/** One point of a curve. */
export interface LossPoint {
  step: number;
  loss: number;
  /** Curve name, e.g. `train` or `eval`. */
  split: string;
}

/** Train losses and eval `loss` metrics of `records` as plot points (non-finite dropped). */
export function lossPointsFromRecords(records: readonly MetricRecord[]): LossPoint[] {
  const out: LossPoint[] = [];
  for (const r of records) {
    if (r.type === 'train') out.push({ step: r.step, loss: r.loss, split: 'train' });
    else if (typeof r.metrics.loss === 'number') out.push({ step: r.step, loss: r.metrics.loss, split: 'eval' });
  }
  return out.filter((p) => Number.isFinite(p.loss));
}

/** Options of {@link lossCurveSvg}. */
export interface LossCurveOptions {
  /** Plot title. Default `Loss`. */
  title?: string;
  /** Width/height of the plot area in pixels. Default 560 x 320. */
  width?: number;
  height?: number;
  /** Log-scale y axis. Default false. */
  logScale?: boolean;
}

/** The Vega-Lite spec of the loss plot (exposed for callers who embed it in HTML). */
export function lossCurveSpec(points: readonly LossPoint[], o: LossCurveOptions = {}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title ?? 'Loss',
    width: o.width ?? 560,
    height: o.height ?? 320,
    background: 'white',
    data: { values: points.map((p) => ({ ...p })) },
    mark: { type: 'line', point: points.length <= 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { type: o.logScale ? 'log' : 'linear', zero: false } },
      color: { field: 'split', type: 'nominal', title: 'split', scale: { domain: ['train', 'eval'] } },
    },
  };
}

/** Render the loss curves of `records` (or explicit points) to an SVG string. */
export function lossCurveSvg(records: readonly MetricRecord[] | readonly LossPoint[], o: LossCurveOptions = {}): Promise<string> {
  const points = records.length > 0 && 'split' in records[0]
    ? (records as readonly LossPoint[])
    : lossPointsFromRecords(records as readonly MetricRecord[]);
  return renderVegaLiteSvg(lossCurveSpec(points, o));
}
