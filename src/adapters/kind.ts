/**
 * What an adapter kind is, in one place: every kind module (`lora.ts`, `mor.ts`, ...) exports
 * ONE {@link AdapterKindDefinition}, and `registry.ts` lists them. The rest of the code asks
 * the registry (config schema, PEFT fields, tensors, layer class, routing, merging, parameter
 * formula) instead of switching on `kind`, so a new kind is one new module plus one
 * registration line.
 */
import type { z } from 'zod';
import type { Linear } from '../nn/linear.ts';
import type { AdapterLayer } from './layer.ts';

/** The fields every kind's config has (see `commonFields` in schema.ts). */
export interface KindConfigBase {
  kind: string;
  targetModules?: string[] | string;
  excludeModules?: string[] | string;
  layersToTransform?: number | number[];
  layersPattern?: string | string[];
  modulesToSave?: string[];
  baseModelNameOrPath?: string;
  seed: number;
}

/** One adapted linear layer as the parameter formulas see it. */
export interface LayerShape {
  dIn: number;
  dOut: number;
  hasBias: boolean;
}

/**
 * One adapter_config.json field <-> one config field. Reading maps `peft` to `field` (after
 * `read`, which may throw a UserError or return undefined to drop it); writing maps back (after
 * `write`). A field without `field` is only validated on reading and written as `write()`.
 */
export interface PeftField {
  peft: string;
  field?: string;
  /** File value -> config value (default: as is). `file` names the file in errors. */
  read?: (value: unknown, file: string) => unknown;
  /** Config value -> file value (default: as is, undefined written as null). */
  write?: (value: unknown) => unknown;
}

/** How a kind is stored in PEFT's adapter_config.json. */
export interface PeftFormat {
  /** `peft_type` written and recognised. */
  peftType: string;
  /** Among kinds sharing a `peft_type`, does this file belong to this kind? Default: yes. */
  claims?: (json: Record<string, unknown>) => boolean;
  /** The field table, used both ways (the common selection fields are added by peftConfig.ts). */
  fields: PeftField[];
}

/**
 * How a kind merges into the base weight: `exact` (a plain matrix: LoRA, DoRA), `fixedRouting`
 * (only under a fixed routing vector, see routing/fixedRouting.ts), `never`, or `inPlace` (the
 * trained weights already are the layer's).
 */
export type MergeMode = 'exact' | 'fixedRouting' | 'never' | 'inPlace';

/** Everything the library needs to know about one adapter kind. */
export interface AdapterKindDefinition<C extends KindConfigBase = KindConfigBase, S = unknown> {
  /** The `kind` value of its configs (user-facing name). */
  readonly kind: C['kind'];
  /** Display name (`MoR`), for titles and messages. */
  readonly label: string;
  /** zod schema of the config, `kind` a literal; strict, with defaults. */
  readonly schema: z.ZodType<C>;
  /** Cross-field checks after parsing: a message naming the fields, or undefined. */
  validate?(config: C): string | undefined;
  /** `targetModules` when the config gives none. */
  readonly defaultTargets: string[] | 'all-linear';
  /** Whether the config has a rank `r` (and rank / alpha patterns, a dropout, a bias mode). */
  readonly lowRank: boolean;
  /** Whether its layers route tokens to experts (reports routing, has a routing table). */
  routes(config: C): boolean;
  /** Number of experts N of a routed config. */
  numExperts?(config: C): number;
  readonly merge: MergeMode;
  /** `fixedRouting` kinds: does merging need a routing vector (false: e.g. a uniform router)? */
  mergeNeedsRouting?(config: C): boolean;
  readonly peft: PeftFormat;
  /** Per-layer settings at module `path` (rank / alpha patterns applied). */
  layerSpec(config: C, path: string): S;
  /** PEFT key suffix -> shape of one adapter on a `[dOut, dIn]` layer. */
  tensorShapes(spec: S, dIn: number, dOut: number, hasBias: boolean): Map<string, number[]>;
  /** A fresh wrapper of this kind around `base`. */
  createLayer(base: Linear, modulePath: string): AdapterLayer;
  /** Trainable parameters of one adapted layer (docs/mor.md's formulas). */
  paramsPerLayer(config: C, layer: LayerShape): number;
  /** The formula of {@link paramsPerLayer} as text, for reports. */
  formulaText(config: C): string;
  /** A short description for table cells (`mor N=8 r=8 alpha=16 router=softmax`), without targets. */
  describe(config: C): string;
  /** How a chosen rank reads in budget notes (default `r=<r>`). */
  rankText?(r: number): string;
}
