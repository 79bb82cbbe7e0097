/**
 * Runs before every test file: after each test, let the worker's event loop turn once. Vitest runs a file's tests
 * back to back on microtasks, so a file of synchronous tests never reads the main process's replies; after 60 s of
 * such work the worker fails with `Timeout calling "onTaskUpdate"` even though every test passed.
 */
import { afterEach } from "vitest"

// Taken before any test can install fake timers.
const setImmediateReal = globalThis.setImmediate

afterEach(() => new Promise<void>((resolve) => void setImmediateReal(() => resolve())))
