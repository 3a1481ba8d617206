// Injected into dist/browser.js by scripts/build.mjs: Node timers the core uses, for pages
// and workers (the trainer yields to the event loop with setImmediate between steps).
export const setImmediate = (fn, ...args) => setTimeout(fn, 0, ...args);
