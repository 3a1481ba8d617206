/** Commander argument parser for flags whose value is JSON (`--adapter '{"kind":"mor"}'`). */
import { UserError } from '../errors.ts';

/** Parse the flag's value as JSON; invalid JSON is a one-line {@link UserError} naming the flag. */
export function jsonArg(flag: string) {
  return (v: string): unknown => {
    try {
      return JSON.parse(v);
    } catch (e) {
      throw new UserError(`${flag}: invalid JSON (${(e as Error).message})`);
    }
  };
}
