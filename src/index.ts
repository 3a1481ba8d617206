/** mor-peft public API: explicit named exports only. */
export { initBackend, backendInfo, tf } from './backend/tf.ts';
export type { BackendInfo, InitOptions, MatmulPath } from './backend/tf.ts';
export { matMul, matMul2d } from './backend/matmul.ts';
export { UserError, isUserError } from './errors.ts';
export { Module } from './nn/module.ts';
export type { Param } from './nn/module.ts';
export { Linear } from './nn/linear.ts';
export type { LinearLike } from './nn/linear.ts';
export type { ForwardContext, RoutingObserver } from './nn/context.ts';
export { inferenceContext } from './nn/context.ts';
export { main } from './cli/main.ts';
