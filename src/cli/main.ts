/**
 * The `mor` command line: parse -> validate -> call the library. No logic of its own.
 * `main(argv)` is callable in-process (tests) and returns the exit code:
 * 0 success, 1 user error (one line `error: ...`), 2 bug (stack trace), 130 / 143 stopped by
 * SIGINT / SIGTERM (`mor train`: after saving a checkpoint; one line says what was saved).
 */
import { Command, CommanderError } from 'commander';
import { Interrupted, isUserError } from '../errors.ts';
import { registerCommands } from './commands/index.ts';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const defaultIO: CliIO = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
};

/** Build the commander program (exposed for `--help` tests). */
export function buildProgram(io: CliIO = defaultIO): Command {
  const program = new Command('mor')
    .description('Parameter-efficient fine-tuning (MoR, LoRA, DoRA, MoELoRA, HydraLoRA) of LLaMA-family models')
    .version('0.1.0')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  registerCommands(program, io);
  for (const c of program.commands) c.exitOverride().configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  return program;
}

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIO = defaultIO): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help / --version exit with code 0; parse errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 1;
    }
    if (e instanceof Interrupted) {
      io.stderr(`${e.message}\n`);
      return e.exitCode;
    }
    if (isUserError(e)) {
      io.stderr(`error: ${e.message}\n`);
      return 1;
    }
    io.stderr(`internal error (a bug in mor-peft, please report it):\n${(e as Error)?.stack ?? String(e)}\n`);
    return 2;
  }
}
