/**
 * MoR / MoE routing heatmap: mean routing weight per expert (x) for each task (y), one
 * panel per layer — the paper's evidence that experts specialise by task.
 */
import type { TopLevelSpec } from 'vega-lite';
import { renderVegaLiteSvg } from '../plot/render.ts';

/** Mean routing weight of `expert` over the tokens of `task` at `layer`. */
export interface RoutingCell {
  /** Layer (or module path) label, e.g. `0` or `model.layers.0.mlp.up_proj`. */
  layer: string | number;
  task: string;
  /** Expert index (0-based). */
  expert: number;
  /** Mean weight in [0, 1]. */
  weight: number;
}

/** Options of {@link routingHeatmapSvg}. */
export interface RoutingHeatmapOptions {
  /** Title. Default `Mean routing weight per expert`. */
  title?: string;
  /** Panels per row. Default 4. */
  columns?: number;
  /** Print the weight in each cell. Default: when there are at most 16 experts. */
  showValues?: boolean;
}

/** The Vega-Lite spec of the heatmap. */
export function routingHeatmapSpec(cells: readonly RoutingCell[], o: RoutingHeatmapOptions = {}): TopLevelSpec {
  const experts = new Set(cells.map((c) => c.expert)).size;
  const showValues = o.showValues ?? experts <= 16;
  const values = cells.map((c) => ({ layer: String(c.layer), task: c.task, expert: c.expert, weight: c.weight }));
  const layerOrder = [...new Set(values.map((v) => v.layer))];
  const x = { field: 'expert', type: 'ordinal' as const, title: 'expert' };
  const y = { field: 'task', type: 'nominal' as const, title: 'task' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title ?? 'Mean routing weight per expert',
    background: 'white',
    data: { values },
    facet: { field: 'layer', type: 'ordinal', title: 'layer', sort: layerOrder },
    columns: o.columns ?? 4,
    spec: {
      width: Math.max(80, 22 * experts),
      height: { step: 18 },
      layer: [
        {
          mark: 'rect',
          encoding: {
            x,
            y,
            color: { field: 'weight', type: 'quantitative', title: 'weight', scale: { scheme: 'blues', domainMin: 0 } },
            tooltip: [{ field: 'layer' }, { field: 'task' }, { field: 'expert' }, { field: 'weight', format: '.3f' }],
          },
        },
        ...(showValues
          ? [{
              mark: { type: 'text' as const, fontSize: 8 },
              encoding: {
                x,
                y,
                text: { field: 'weight', type: 'quantitative' as const, format: '.2f' },
              },
            }]
          : []),
      ],
    },
  } as TopLevelSpec;
}

/** Render the heatmap of `cells` to an SVG string. */
export function routingHeatmapSvg(cells: readonly RoutingCell[], o: RoutingHeatmapOptions = {}): Promise<string> {
  return renderVegaLiteSvg(routingHeatmapSpec(cells, o));
}

/** What {@link routingCellsFromStats} reads (the adapters' `RoutingStats` fits). */
export interface RoutingStatsLike {
  modulePaths(): string[];
  groups(): string[];
  tokens(modulePath: string, group?: string): number;
  mean(modulePath: string, group?: string): Float32Array;
}

/**
 * Heatmap cells from routing statistics grouped by task: one cell per (layer, task, expert).
 * Layer labels drop the `base_model.model.` and `model.` prefixes (`layers.0.mlp.up_proj`).
 */
export function routingCellsFromStats(stats: RoutingStatsLike): RoutingCell[] {
  const cells: RoutingCell[] = [];
  for (const p of stats.modulePaths()) {
    const layer = p.replace(/^base_model\.model\./, '').replace(/^model\./, '');
    for (const task of stats.groups()) {
      if (stats.tokens(p, task) === 0) continue;
      stats.mean(p, task).forEach((weight, expert) => cells.push({ layer, task, expert, weight }));
    }
  }
  return cells;
}
