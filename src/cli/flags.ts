/** Parsers and checks of CLI flag values shared by the `mor` commands. */
import { UserError } from '../errors.ts';

/** Commander argument parser for a flag whose value is JSON; invalid JSON is a one-line {@link UserError} naming the flag. */
export function jsonArg(flag: string) {
  return (v: string): unknown => {
    try {
      return JSON.parse(v);
    } catch (e) {
      throw new UserError(`${flag}: invalid JSON (${(e as Error).message})`);
    }
  };
}

/** An optional flag's value as a positive integer (undefined stays undefined). */
export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer (got "${value}")`);
  return n;
}
