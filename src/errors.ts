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

/**
 * A command stopped by a signal (Ctrl-C = SIGINT, or SIGTERM) after saving what it could. Not
 * an error of the user's nor a bug: the CLI prints the message (one line saying what was saved
 * and how to continue, no `error:` prefix) and exits with `exitCode`, 128 + the signal's number
 * as shells report it (130 for SIGINT, 143 for SIGTERM), so `mor train && mor eval` stops there.
 */
export class Interrupted extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'Interrupted';
  }
}
