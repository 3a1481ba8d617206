/**
 * Optional native OpenBLAS kernel for the wasm backend's BatchMatMul.
 * Placeholder until the addon lands: reports "not built".
 */
export type BlasStatus = { ok: true; threads: number } | { ok: false; reason: string };

export function enableBlas(): BlasStatus {
  return { ok: false, reason: 'native addon not built' };
}
