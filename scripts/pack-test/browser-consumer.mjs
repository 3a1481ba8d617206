// Bundled by scripts/pack-test.sh for the browser (esbuild --platform=browser): the package's
// `browser` export condition must resolve to dist/browser.js.
import { initBackend, urlSource, getPeftModel } from 'mor-peft';

console.log(typeof initBackend, typeof urlSource, typeof getPeftModel);
