/** The before / after accuracy table (per task and the unweighted average), as HTML rows. */
import type { AccuracyResult } from 'mor-peft';

const pct = (v: number | undefined) => (v === undefined ? '…' : (100 * v).toFixed(1));

/** Fill `table` with one row per task of `before`, and `after` beside it once known. */
export function renderAccuracyTable(table: HTMLTableElement, before: AccuracyResult, after?: AccuracyResult): void {
  const rows = Object.keys(before.tasks).sort().map((t) => [t, String(before.n[t]), pct(before.tasks[t]), pct(after?.tasks[t]),
    after ? `${after.tasks[t] >= before.tasks[t] ? '+' : ''}${(100 * (after.tasks[t] - before.tasks[t])).toFixed(1)}` : '']);
  rows.push(['average', String(Object.values(before.n).reduce((a, b) => a + b, 0)), pct(before.average), pct(after?.average),
    after ? `${after.average >= before.average ? '+' : ''}${(100 * (after.average - before.average)).toFixed(1)}` : '']);
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  for (const h of ['task', 'items', 'before (%)', 'after MoR (%)', 'delta (points)']) head.appendChild(document.createElement('th')).textContent = h;
  const body = table.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    for (const c of r) tr.insertCell().textContent = c;
  }
}
