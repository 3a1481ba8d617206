import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lossCurveSvg, lossPointsFromRecords } from '../../src/plot/lossCurve.ts';
import { routingCellsFromStats, routingHeatmapSvg } from '../../src/routing/heatmap.ts';
import type { MetricRecord } from '../../src/train/metrics.ts';

/** Minimal well-formedness check: one root <svg>, every tag closed in order. */
function assertWellFormedSvg(svg: string): void {
  assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, selfClose] = m;
    if (selfClose) continue;
    if (close) assert.equal(stack.pop(), name, `unbalanced </${name}>`);
    else stack.push(name);
  }
  assert.deepEqual(stack, []);
}

const texts = (svg: string): string[] => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

test('loss curve SVG has train and eval curves, axis titles and the title', async () => {
  const records: MetricRecord[] = [];
  for (let s = 1; s <= 20; s++) records.push({ type: 'train', step: s, loss: 3 / s, lr: 1e-3, gradNorm: 1, tokens: 1, elapsedSec: s, tokensPerSec: 1 });
  records.push({ type: 'eval', step: 10, metrics: { loss: 0.5, acc: 0.4 } }, { type: 'eval', step: 20, metrics: { loss: 0.3 } });
  assert.equal(lossPointsFromRecords(records).filter((p) => p.split === 'eval').length, 2);
  const svg = await lossCurveSvg(records, { title: 'MoR run 7' });
  assertWellFormedSvg(svg);
  const t = texts(svg);
  for (const label of ['MoR run 7', 'step', 'loss', 'train', 'eval']) assert.ok(t.includes(label), `missing label ${label}`);
  assert.ok((svg.match(/class="mark-line/g) ?? []).length >= 1);
});

test('routing heatmap SVG: one panel per layer, tasks and experts labelled, cell values printed', async () => {
  const cells = [];
  for (const layer of [0, 1]) {
    for (const task of ['arc_easy', 'boolq', 'piqa']) {
      for (let e = 0; e < 4; e++) cells.push({ layer, task, expert: e, weight: task === 'boolq' && e === 2 ? 0.91 : 0.03 });
    }
  }
  const svg = await routingHeatmapSvg(cells, { title: 'Routing by task' });
  assertWellFormedSvg(svg);
  const t = texts(svg);
  for (const label of ['Routing by task', 'arc_easy', 'boolq', 'piqa', 'expert', 'task', 'layer', '0.91', '3']) {
    assert.ok(t.includes(label), `missing label ${label}`);
  }
  assert.equal(t.filter((x) => x === '0.91').length, 2); // one per layer panel
  assert.equal((svg.match(/aria-roledescription="rect mark"/g) ?? []).length, 2 * 3 * 4); // one cell per (layer, task, expert)
});

test('routingCellsFromStats: one cell per layer, task and expert, short layer names', () => {
  const means: Record<string, Record<string, number[]>> = {
    'base_model.model.model.layers.0.mlp.up_proj': { a: [0.75, 0.25], b: [0.1, 0.9] },
    'base_model.model.model.layers.1.mlp.up_proj': { a: [0.5, 0.5] },
  };
  const stats = {
    modulePaths: () => Object.keys(means),
    groups: () => ['a', 'b'],
    tokens: (p: string, g?: string) => (g && means[p][g] ? 3 : 0),
    mean: (p: string, g?: string) => Float32Array.from(means[p][g!]),
  };
  assert.deepEqual(routingCellsFromStats(stats), [
    { layer: 'layers.0.mlp.up_proj', task: 'a', expert: 0, weight: 0.75 },
    { layer: 'layers.0.mlp.up_proj', task: 'a', expert: 1, weight: 0.25 },
    { layer: 'layers.0.mlp.up_proj', task: 'b', expert: 0, weight: Math.fround(0.1) },
    { layer: 'layers.0.mlp.up_proj', task: 'b', expert: 1, weight: Math.fround(0.9) },
    { layer: 'layers.1.mlp.up_proj', task: 'a', expert: 0, weight: 0.5 },
    { layer: 'layers.1.mlp.up_proj', task: 'a', expert: 1, weight: 0.5 },
  ]);
});
