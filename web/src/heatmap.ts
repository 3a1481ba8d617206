/** The routing heatmap: one row per task, one column per expert, darker = more weight. */
import type { RoutingSummary } from './pipeline.ts';

/** Draw `r.weights` (`[task][expert]`) on `canvas`, with task names on the left. */
export function drawRoutingHeatmap(canvas: HTMLCanvasElement, r: RoutingSummary): void {
  const ctx = canvas.getContext('2d');
  if (!ctx || r.weights.length === 0) return;
  const experts = r.weights[0].length;
  const left = 110;
  const top = 18;
  const cellW = (canvas.width - left - 10) / experts;
  const cellH = Math.min(28, (canvas.height - top - 4) / r.tasks.length);
  const max = r.weights.flat().reduce((a, b) => Math.max(a, b), 0);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = '11px sans-serif';
  ctx.fillStyle = '#333';
  for (let e = 0; e < experts; e++) ctx.fillText(`e${e}`, left + e * cellW + cellW / 2 - 6, top - 5);
  r.tasks.forEach((task, t) => {
    ctx.fillStyle = '#333';
    ctx.fillText(task, 4, top + t * cellH + cellH / 2 + 4);
    r.weights[t].forEach((v, e) => {
      // White (0) to dark blue (the largest weight in the map).
      const a = max > 0 ? v / max : 0;
      ctx.fillStyle = `rgb(${Math.round(255 - 225 * a)}, ${Math.round(255 - 170 * a)}, ${Math.round(255 - 75 * a)})`;
      ctx.fillRect(left + e * cellW, top + t * cellH, cellW - 1, cellH - 1);
    });
  });
}
