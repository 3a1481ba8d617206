/**
 * The tasks of the bundled multi-task suite, in the order they are built and reported.
 */
import { antonymTask } from './antonym.ts';
import { definitionTask } from './definition.ts';
import { hypernymTask } from './hypernym.ts';
import { rhymeTask, syllablesTask } from './phonetics.ts';
import { nameGenderTask, spamTask } from './reading.ts';
import { arithmeticTask, stringOpsTask } from './reasoning.ts';
import type { TaskSpec } from './types.ts';
import { sotuPresidentTask, stateAbbreviationTask } from './usHistory.ts';

/** All suite tasks: knowledge, language, reading, reasoning. */
export const SUITE_TASKS: readonly TaskSpec[] = [
  definitionTask,
  hypernymTask,
  sotuPresidentTask,
  stateAbbreviationTask,
  rhymeTask,
  syllablesTask,
  antonymTask,
  spamTask,
  nameGenderTask,
  arithmeticTask,
  stringOpsTask,
];

/** Look a task up by name. */
export function getTask(name: string): TaskSpec | undefined {
  return SUITE_TASKS.find((t) => t.name === name);
}
