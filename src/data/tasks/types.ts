/**
 * Types shared by the task generators of the bundled multi-task suite.
 */
import type { Rng } from '../../util/rng.ts';

/** The paper's task categories (plus reasoning). */
export type TaskCategory = 'knowledge' | 'language' | 'reading' | 'reasoning';

/** Wanted number of items per split (a task with fewer underlying facts gives fewer). */
export interface SplitSizes {
  train: number;
  validation: number;
  test: number;
}

/** One generated item: a question with its multiple-choice options. */
export interface TaskItem {
  /**
   * The underlying fact's key (a word, an email id, a year, a problem): splits are made by
   * key, so no key occurs in two splits of a task.
   */
  key: string;
  /** The prompt (the same text in training and evaluation). */
  question: string;
  /** The correct answer (the assistant message / completion). */
  answer: string;
  /** Options including the answer, all distinct. */
  choices: string[];
  /** Index of {@link answer} in {@link choices}. */
  answerIndex: number;
}

/** A task's generated splits. */
export interface TaskSplits {
  train: TaskItem[];
  validation: TaskItem[];
  test: TaskItem[];
}

/** What a generator receives. */
export interface TaskContext {
  /** This task's own generator (derived from the suite seed and the task name). */
  rng: Rng;
  sizes: SplitSizes;
}

/**
 * One task of the suite: how to generate its splits and, for the pretraining corpus, the
 * plain-text statements of the same relation for the facts that are NOT held out.
 */
export interface TaskSpec {
  name: string;
  category: TaskCategory;
  /** Data package(s) the task is built from. */
  source: string;
  /** One-line description for the docs and the manifest. */
  description: string;
  /** Number of choices per multiple-choice item (chance = 1 / choices). */
  numChoices: number;
  /** Wanted sizes when the caller gives none (bounded by the facts available). */
  defaultSizes: SplitSizes;
  generate(ctx: TaskContext): TaskSplits;
  /**
   * Plain-text lines stating this task's relation for facts that are not in `heldOut`
   * (the task's validation and test splits), for the pretraining corpus. Optional.
   */
  corpusLines?(heldOut: TaskSplits, rng: Rng): string[];
}
