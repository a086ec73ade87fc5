/**
 * Cleanups that must run even when the user presses Ctrl-C (temp folders of atomic
 * writes). Synchronous on purpose: they run from signal handlers right before exit.
 */
const cleanups = new Set<() => void>();

export function registerCleanup(fn: () => void): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

export function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // a cleanup failing must not hide the reason we are exiting
    }
  }
}
