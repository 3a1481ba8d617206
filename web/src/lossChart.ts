/** The live training-loss curve: a line on a canvas, redrawn as steps arrive. */
import type { StepPoint } from './pipeline.ts';

/** Draw `points` (loss against step, x axis up to `totalSteps`) on `canvas`. */
export function drawLossCurve(canvas: HTMLCanvasElement, points: readonly StepPoint[], totalSteps: number): void {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const { width: w, height: h } = canvas;
  const pad = { left: 44, right: 10, top: 10, bottom: 24 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = '11px sans-serif';
  ctx.strokeStyle = '#999';
  ctx.strokeRect(pad.left, pad.top, w - pad.left - pad.right, h - pad.top - pad.bottom);
  if (points.length === 0) return;
  const losses = points.map((p) => p.loss);
  const hi = losses.reduce((a, b) => Math.max(a, b), -Infinity);
  const lo = losses.reduce((a, b) => Math.min(a, b), Infinity);
  const span = hi - lo || 1;
  const x = (step: number) => pad.left + ((step - 1) / Math.max(1, totalSteps - 1)) * (w - pad.left - pad.right);
  const y = (loss: number) => pad.top + ((hi - loss) / span) * (h - pad.top - pad.bottom);
  ctx.fillStyle = '#333';
  ctx.fillText(hi.toFixed(2), 4, pad.top + 8);
  ctx.fillText(lo.toFixed(2), 4, h - pad.bottom);
  ctx.fillText(`step ${points.at(-1)!.step} / ${totalSteps}`, w - 110, h - 6);
  ctx.strokeStyle = '#1f77b4';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i === 0 ? ctx.moveTo(x(p.step), y(p.loss)) : ctx.lineTo(x(p.step), y(p.loss))));
  ctx.stroke();
}
