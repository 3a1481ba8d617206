/**
 * An error caused by the user's input (a bad file, an unknown option, a wrong shape).
 * The CLI prints its message as one line `error: ...` and exits with code 1; any other
 * error is a bug and is printed with its stack trace (exit code 2).
 */
export class UserError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UserError';
  }
}

/** Narrowing helper: is `e` a {@link UserError}? */
export function isUserError(e: unknown): e is UserError {
  return e instanceof UserError;
}
