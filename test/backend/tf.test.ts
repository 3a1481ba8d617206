/** Backend initialisation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendInfo, describeBackend, initBackend, tf } from '../../src/backend/tf.ts';

await initBackend({ announce: false });

test('initBackend is idempotent and runs on wasm', async () => {
  const again = await initBackend();
  assert.equal(again, backendInfo());
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(describeBackend(again), /^((own AVX-512 sgemm \+ )?OpenBLAS( \(\w+ kernels(, set by OPENBLAS_CORETYPE)?\))?, \d+ threads?|pure wasm \(.+\))$/);
});

test('the banner names the kernel set OpenBLAS runs, and says when the environment forced it', () => {
  const info = { backend: 'wasm', matmulPath: 'wasm+blas' as const, threads: 2, wasmThreads: 1 };
  const config = 'OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64 Cooperlake';
  const saved = process.env.OPENBLAS_CORETYPE;
  try {
    delete process.env.OPENBLAS_CORETYPE;
    assert.equal(describeBackend({ ...info, blasConfig: config }), 'OpenBLAS (Cooperlake kernels), 2 threads');
    process.env.OPENBLAS_CORETYPE = 'Haswell';
    assert.equal(describeBackend({ ...info, blasConfig: config.replaceAll('Cooperlake', 'Haswell') }),
      'OpenBLAS (Haswell kernels, set by OPENBLAS_CORETYPE), 2 threads');
    // A build string without a core name at the end names none.
    assert.equal(describeBackend({ ...info, blasConfig: 'OpenBLAS 0.3.26 MAX_THREADS=64' }), 'OpenBLAS, 2 threads');
    // The addon's own sgemm, when it runs the products, comes first.
    assert.equal(describeBackend({ ...info, blasConfig: config, sgemm: 'avx512' }),
      'own AVX-512 sgemm + OpenBLAS (Cooperlake kernels, set by OPENBLAS_CORETYPE), 2 threads');
  } finally {
    if (saved === undefined) delete process.env.OPENBLAS_CORETYPE;
    else process.env.OPENBLAS_CORETYPE = saved;
  }
});
