/**
 * Ctrl-C handling for training commands: the first SIGINT (or SIGTERM) aborts the returned
 * signal, so the trainer finishes the current update, saves a checkpoint and returns; the
 * command then exits with {@link signalExitCode} (130 for SIGINT, 143 for SIGTERM), so that
 * `mor train && mor eval` does not go on without a finished adapter. A second signal exits at
 * once with that code, as users expect from a stuck program.
 */
import { constants } from 'node:os';

/** What {@link handleInterrupts} returns. */
export interface InterruptHandle {
  /** Aborted on the first interrupt. */
  signal: AbortSignal;
  /** The first signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Remove the handlers (call when training is over). */
  dispose(): void;
}

export interface InterruptOptions {
  /** Told once on the first interrupt (e.g. print "saving a checkpoint..."). */
  onFirst?: (signal: NodeJS.Signals) => void;
  /** Called on the second interrupt with {@link signalExitCode} of it. Default `process.exit`. */
  exit?: (code: number) => void;
  /** Signals to handle. Default SIGINT and SIGTERM. */
  signals?: NodeJS.Signals[];
}

/** The shell's exit status of a process ended by `signal`: 128 + its number (SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** Install the two-stage interrupt handlers on `process`. */
export function handleInterrupts(o: InterruptOptions = {}): InterruptHandle {
  const controller = new AbortController();
  const signals = o.signals ?? ['SIGINT', 'SIGTERM'];
  const exit = o.exit ?? ((code: number) => process.exit(code));
  let received: NodeJS.Signals | undefined;
  const handler = (sig: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      exit(signalExitCode(sig));
      return;
    }
    received = sig;
    controller.abort();
    o.onFirst?.(sig);
  };
  for (const s of signals) process.on(s, handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose: () => {
      for (const s of signals) process.off(s, handler);
    },
  };
}
