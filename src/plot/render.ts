/**
 * Render a Vega-Lite spec to an SVG string offline: vega-lite compiles to Vega, Vega's
 * headless view (`renderer: 'none'`) serialises marks to SVG. No browser and no `canvas`
 * package are needed (text widths are estimated when canvas is absent).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Compile and render `spec` to a standalone SVG document string. */
export async function renderVegaLiteSvg(spec: TopLevelSpec): Promise<string> {
  const vgSpec = compile(spec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
