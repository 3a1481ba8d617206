/**
 * Static routing: pin the router of a routed adapter to a fixed vector `g*` `[N]`, or fold the
 * adapter into the base weights under that vector (zero added latency; docs/mor.md, "Merging").
 * Only kinds whose definition says `merge: "fixedRouting"` support it; their layers implement
 * `FixedRoutingLayer`. The vectors usually come from `meanRoutingVectors` (routing/stats.ts).
 */
import { UserError } from '../errors.ts';
import type { AdapterLayer } from '../adapters/layer.ts';
import { isDeltaLayer, type DeltaAdapterLayer, type FixedRoutingLayer } from '../adapters/deltaLayer.ts';
import type { PeftModel } from '../adapters/inject.ts';
import { adapterKind } from '../adapters/registry.ts';

/** One vector `[N]` for every routed layer, or one per module path. */
export type RoutingVectors = ArrayLike<number> | Map<string, ArrayLike<number>>;

/** Does this layer's kind merge under a fixed routing vector? */
function fixedRoutingLayer(l: AdapterLayer): (DeltaAdapterLayer & FixedRoutingLayer) | undefined {
  return isDeltaLayer(l) && adapterKind(l.kind).merge === 'fixedRouting' ? (l as DeltaAdapterLayer & FixedRoutingLayer) : undefined;
}

/**
 * Fold adapter `name` (default: the active one) under a FIXED routing into the base weights of
 * every layer holding it. All or nothing: a refusal unmerges the layers already merged.
 */
export function mergeWithRouting(peft: PeftModel, routing: RoutingVectors, name = peft.activeAdapter): void {
  if (name === undefined) throw new UserError('no adapter to merge');
  const done: DeltaAdapterLayer[] = [];
  try {
    for (const [path, layer] of peft.adapterLayers()) {
      if (!layer.hasAdapter(name)) continue;
      const l = fixedRoutingLayer(layer);
      if (!l) {
        throw new UserError(`${path}: mergeWithRouting needs an adapter with a router that merges under fixed routing, "${name}" is ${layer.kind}`);
      }
      const g = routing instanceof Map ? routing.get(path) : routing;
      if (!g) throw new UserError(`mergeWithRouting: no routing vector for ${path}`);
      l.merge(name, { routing: g });
      done.push(l);
    }
  } catch (e) {
    for (const l of done) l.unmerge();
    throw e;
  }
}

/** Pin (or with undefined, unpin) the routing of adapter `name` on every layer that supports it. */
export function setFixedRouting(peft: PeftModel, routing: RoutingVectors | undefined, name = peft.activeAdapter): void {
  if (name === undefined) throw new UserError('no active adapter');
  for (const [path, layer] of peft.adapterLayers()) {
    const l = fixedRoutingLayer(layer);
    if (!layer.hasAdapter(name) || !l) continue;
    const g = routing instanceof Map ? routing.get(path) : routing;
    if (routing instanceof Map && !g) throw new UserError(`setFixedRouting: no routing vector for ${path}`);
    l.setFixedRouting(name, g);
  }
}
