/**
 * The tensors of a merged model, computed one layer at a time while they are written: an adapted
 * layer is merged (base weight + its adapter's delta, on the heap), read, and unmerged again, so
 * a big model whose frozen weights stay in the native store is merged without a float32 copy of
 * the whole model (`mor merge` on 7B models). Every other parameter is read where it lives.
 */
import type { PeftModel } from '../adapters/inject.ts';
import type { AdapterLayer } from '../adapters/layer.ts';
import { isDeltaLayer } from '../adapters/deltaLayer.ts';
import type { Module } from '../nn/module.ts';
import type { TensorSource } from '../models/save.ts';

/** Per-layer routing of a MoR merge, by module path. */
export type LayerRouting = Map<string, ArrayLike<number>>;

/** The HF-keyed tensors of `peft`'s model with its active adapter merged (lazily, layer by layer). */
export function mergedTensorSources(peft: PeftModel, routing?: LayerRouting): TensorSource[] {
  const layers = new Map<Module, string>(peft.adapterLayers().map(([p, l]) => [l, p]));
  const out: TensorSource[] = [];
  const walk = (m: Module, prefix: string): void => {
    const join = (n: string) => (prefix ? `${prefix}.${n}` : n);
    const layerPath = layers.get(m);
    if (layerPath !== undefined) {
      const l = m as AdapterLayer;
      for (const [n, p] of l.baseLayer.ownParams()) {
        out.push({ name: join(n), shape: [...p.shape], read: () => mergedParam(l, n, routing?.get(layerPath)) });
      }
      return;
    }
    for (const [n, p] of m.ownParams()) out.push({ name: join(n), shape: [...p.shape], read: () => p.dataSync() as Float32Array });
    for (const [n, c] of m.children()) walk(c, join(n));
  };
  walk(peft.model, '');
  return out;
}

/**
 * Parameter `name` of `l`'s base layer with its active adapter folded in (full fine-tuning's
 * base layer already holds the active adapter's weights).
 */
function mergedParam(l: AdapterLayer, name: string, routing: ArrayLike<number> | undefined): Float32Array {
  const active = l.activeAdapter;
  if (!isDeltaLayer(l) || active === undefined || !l.hasAdapter(active) || l.disabled) return l.baseLayer.param(name).dataSync() as Float32Array;
  l.merge(active, routing ? { routing } : {});
  try {
    return l.baseLayer.param(name).dataSync() as Float32Array;
  } finally {
    l.unmerge();
  }
}
