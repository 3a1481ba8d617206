#!/usr/bin/env bash
# CI: the package as a user gets it. Packs the library (prepack builds dist/), installs the
# tarball into a scratch project in a temporary folder, runs a plain-Node consumer
# (scripts/pack-test/app.mjs: no tsx, no initBackend call) and the `mor` binary, and
# type-checks a TypeScript consumer against the shipped .d.ts files.
# Installs come from npm's local cache (the dependencies are there after `npm ci`); set
# MOR_PACK_TEST_KEEP=1 to keep the scratch folder.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mor-pack-test.XXXXXX")"
if [ -z "${MOR_PACK_TEST_KEEP:-}" ]; then trap 'rm -rf "$work"' EXIT; else echo "pack-test: keeping $work"; fi

cd "$root"
tgz="$work/$(npm pack --silent --pack-destination "$work" | tail -n 1)"
echo "pack-test: $(basename "$tgz"): $(du -k "$tgz" | cut -f1) kB, $(tar tzf "$tgz" | wc -l) files"
if tar tzf "$tgz" | grep -E '^package/(src|test|bench)/'; then echo "pack-test: FAIL sources or tests in the tarball"; exit 1; fi

app="$work/app"
mkdir "$app"
cp scripts/pack-test/app.mjs scripts/pack-test/browser-consumer.mjs scripts/pack-test/consumer.ts scripts/pack-test/tsconfig.json "$app/"
cd "$app"
printf '{ "name": "mor-pack-test-app", "private": true, "type": "module" }\n' > package.json
install() { npm install --no-audit --no-fund --loglevel=error "$@" "$tgz"; }
install --offline || { echo "pack-test: offline install failed; retrying with --prefer-offline"; install --prefer-offline; }
if [ -e node_modules/tsx ] || [ -e node_modules/typescript ]; then echo "pack-test: FAIL dev tools installed with the package"; exit 1; fi

MOR_QUIET=1 node app.mjs
version="$(MOR_QUIET=1 node_modules/.bin/mor --version)"
[ "$version" = "$(node -p "require('$root/package.json').version")" ] || { echo "pack-test: FAIL mor --version printed '$version'"; exit 1; }
MOR_QUIET=1 node_modules/.bin/mor inspect node_modules/mor-peft/models/base > /dev/null
echo "pack-test: mor $version runs from dist/"
# Node's types come from the repository's devDependencies (the scratch install stays offline).
mkdir -p node_modules/@types
[ -e node_modules/@types/node ] || ln -s "$root/node_modules/@types/node" node_modules/@types/node
"$root/node_modules/.bin/tsc" -p tsconfig.json
echo "pack-test: consumer.ts type-checks against the shipped .d.ts"
# A bundler targeting browsers picks the `browser` condition: dist/browser.js, not the Node build.
"$root/node_modules/.bin/esbuild" browser-consumer.mjs --bundle --platform=browser --format=esm --log-level=error \
  --outfile=browser-bundle.js --metafile=browser-meta.json
node -e "
const inputs = Object.keys(require('./browser-meta.json').inputs);
if (!inputs.includes('node_modules/mor-peft/dist/browser.js') || inputs.some((f) => f.endsWith('mor-peft/dist/index.js'))) {
  console.error('pack-test: FAIL the browser bundle did not resolve mor-peft to dist/browser.js: ' + inputs.join(' ')); process.exit(1);
}"
echo "pack-test: a browser bundler resolves mor-peft to dist/browser.js; OK"
