/** Registers every subcommand; one file per command in this folder. */
import type { Command } from 'commander';
import type { CliIO } from '../main.ts';
import { registerTrainCommand } from './train.ts';
import { registerInspectCommand } from './inspect.ts';
import { registerGenerateCommand } from './generate.ts';
import { registerEvalCommand } from './eval.ts';
import { registerMergeCommand } from './merge.ts';
import { registerRoutingCommand } from './routing.ts';
import { registerDemoCommand } from './demo.ts';
import { registerExperimentCommand } from './experiment.ts';

export function registerCommands(program: Command, io: CliIO): void {
  void program;
  void io;
  registerTrainCommand(program, io);
  registerInspectCommand(program, io);
  registerGenerateCommand(program, io);
  registerEvalCommand(program, io);
  registerMergeCommand(program, io);
  registerRoutingCommand(program, io);
  registerDemoCommand(program, io);
  registerExperimentCommand(program, io);
}
