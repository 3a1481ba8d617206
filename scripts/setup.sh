#!/usr/bin/env bash
# One-time set-up on a fresh machine: OpenBLAS (optional, for the fast native matmul) and
# the npm dependencies. Without OpenBLAS everything still works on the pure-wasm path.
set -euo pipefail
cd "$(dirname "$0")/.."
have_openblas() {
  local h l
  for h in /usr/include/cblas.h /usr/include/*/cblas.h; do
    for l in /usr/lib/libopenblas.so /usr/lib/*/libopenblas.so; do
      [ -e "$h" ] && [ -e "$l" ] && return 0
    done
  done
  return 1
}
if ! have_openblas; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing libopenblas-dev (optional; the pure-wasm path is used if this fails)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null) \
      || echo "setup: could not install libopenblas-dev; continuing on the pure-wasm path"
  else
    echo "setup: OpenBLAS not found (install libopenblas-dev for ~4x faster matmul); using pure wasm"
  fi
fi
npm ci
