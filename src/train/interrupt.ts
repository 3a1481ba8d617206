/**
 * Ctrl-C handling for training commands: the first SIGINT (or SIGTERM) aborts the returned
 * signal, so the trainer finishes the current update, saves a checkpoint and returns; a
 * second one exits at once (code 130), as users expect from a stuck program.
 */

/** What {@link handleInterrupts} returns. */
export interface InterruptHandle {
  /** Aborted on the first interrupt. */
  signal: AbortSignal;
  /** Remove the handlers (call when training is over). */
  dispose(): void;
}

export interface InterruptOptions {
  /** Told once on the first interrupt (e.g. print "saving a checkpoint..."). */
  onFirst?: (signal: NodeJS.Signals) => void;
  /** Called on the second interrupt. Default `process.exit(130)`. */
  exit?: (code: number) => void;
  /** Signals to handle. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
}

/** Install the two-stage interrupt handlers on `process`. */
export function handleInterrupts(o: InterruptOptions = {}): InterruptHandle {
  const controller = new AbortController();
  const signals = o.signals ?? ['SIGINT', 'SIGTERM'];
  const exit = o.exit ?? ((code: number) => process.exit(code));
  const handler = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      exit(130);
      return;
    }
    controller.abort();
    o.onFirst?.(sig);
  };
  for (const s of signals) process.on(s, handler);
  return {
    signal: controller.signal,
    dispose: () => {
      for (const s of signals) process.off(s, handler);
    },
  };
}
