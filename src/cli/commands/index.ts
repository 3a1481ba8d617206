/** Registers every subcommand; one file per command in this folder. */
import type { Command } from 'commander';
import type { CliIO } from '../main.ts';

export function registerCommands(program: Command, io: CliIO): void {
  void program;
  void io;
}
