/**
 * The adapter registry: every adapter kind the library knows, one line each. A kind is one
 * module exporting one {@link AdapterKindDefinition} (kind.ts); adding a kind is that module
 * plus one entry in {@link KINDS}. Everything else asks {@link adapterKind}.
 */
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { AdapterKindDefinition, KindConfigBase } from './kind.ts';
import { loraKind } from './lora.ts';
import { doraKind } from './dora.ts';
import { moeLoraKind } from './moelora.ts';
import { morKind } from './mor.ts';
import { fullKind } from './full.ts';
import { hydraLoraKind } from './hydralora.ts';

/** The registered kinds, in the order they are listed to users. */
const KINDS = [loraKind, doraKind, moeLoraKind, morKind, fullKind, hydraLoraKind] as const;

type Registered = (typeof KINDS)[number];
type ConfigOf<K> = K extends { schema: z.ZodType<infer C> } ? C : never;
type InputOf<K> = K extends { schema: infer S } ? (S extends z.ZodType ? z.input<S> : never) : never;
/** A parsed (defaults filled) adapter config of any registered kind. */
export type AdapterConfig = ConfigOf<Registered>;
/** What callers may pass: defaults optional. */
export type AdapterConfigInput = InputOf<Registered>;
/** The registered kind names. */
export type AdapterKind = AdapterConfig['kind'];

/** The registered kind names, in order. */
export const ADAPTER_KINDS: readonly AdapterKind[] = KINDS.map((k) => k.kind);

/** Every adapter config, discriminated on `kind`. */
export const adapterConfigSchema = z.discriminatedUnion(
  'kind',
  KINDS.map((k) => k.schema) as unknown as [z.ZodObject, ...z.ZodObject[]],
) as unknown as z.ZodType<AdapterConfig, AdapterConfigInput>;

/** Any registered definition, typed loosely for code that works on every kind. */
export type AnyAdapterKind = AdapterKindDefinition<KindConfigBase & Record<string, unknown>, unknown>;

/** Every registered definition, in order. */
export function adapterKinds(): readonly AnyAdapterKind[] {
  return KINDS as unknown as readonly AnyAdapterKind[];
}

/** The definition of `kind`; a UserError naming the registered kinds when unknown. */
export function adapterKind(kind: string): AnyAdapterKind {
  const def = adapterKinds().find((k) => k.kind === kind);
  if (!def) throw new UserError(`unknown adapter kind "${kind}" (kinds: ${ADAPTER_KINDS.join(', ')})`);
  return def;
}
