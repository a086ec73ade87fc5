/**
 * The train split on every core: fixed-size chunks of record indices go to a pool of
 * worker threads (p-limit keeps one task per worker), and come back in index order. Each
 * record depends only on (seed, split, index) and chunk boundaries do not depend on the
 * worker count, so the bytes equal a one-thread run (`workers: 1` runs the same trainBatch
 * in this thread). At most `2 * workers` chunks are in flight, which bounds memory.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import pLimit from "p-limit";
import type { PreparedBatch } from "../writer.js";
import type { ArithConfig } from "./config.js";
import { ArithGenerationError, type TrainValidation, trainBatch } from "./generate.js";
import type { WorkerInit, WorkerTask } from "./worker.js";

export interface ParallelOptions {
  workers: number;
  chunkSize?: number;
  validation?: TrainValidation;
}

export const DEFAULT_CHUNK = 5000;

/** Records are short-lived garbage: a larger young generation took a 2-worker run from 41 to 31 us/record (one measurement, 2026-12-01). */
const YOUNG_GENERATION = { maxYoungGenerationSizeMb: 64 };

/**
 * The bundled worker beside the CLI bundle (dist/arith-worker.mjs); from sources (tsx,
 * vitest) a tiny bootstrap that registers tsx's loader in the thread, then imports worker.ts.
 */
function spawnWorker(init: WorkerInit): Worker {
  const bundled = new URL("./arith-worker.mjs", import.meta.url);
  if (bundled.protocol === "file:" && existsSync(fileURLToPath(bundled))) return new Worker(bundled, { workerData: init, resourceLimits: YOUNG_GENERATION });
  // The ESM build of tsx's API: its CJS build's register() fails to find its loader from a worker.
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm/api").replace(/\.cjs$/, ".mjs")).href;
  const source = new URL("./worker.ts", import.meta.url).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(source)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: init, resourceLimits: YOUNG_GENERATION });
}

interface Reply {
  id: number;
  batch?: PreparedBatch;
  error?: { name: string; message: string; stack?: string; options?: string[] };
}

class PoolWorker {
  private waiting: { resolve: (b: PreparedBatch) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  readonly worker: Worker;

  constructor(init: WorkerInit) {
    this.worker = spawnWorker(init);
    this.worker.on("message", (reply: Reply) => {
      const w = this.waiting;
      this.waiting = null;
      if (!w) return;
      if (reply.batch) return w.resolve(reply.batch);
      const e = reply.error!;
      const err = e.name === "ArithGenerationError" ? new ArithGenerationError(e.message, e.options ?? []) : new Error(`worker: ${e.stack ?? e.message}`);
      w.reject(err);
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiting?.reject(err);
      this.waiting = null;
    };
    this.worker.on("error", (err) => fail(new Error(`internal: an arith worker thread crashed: ${err.stack ?? err.message}`)));
    this.worker.on("exit", (code) => fail(new Error(`internal: an arith worker thread exited (code ${code})`)));
  }

  run(task: WorkerTask): Promise<PreparedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.worker.postMessage(task);
    });
  }
}

export async function* parallelTrainBatches(config: ArithConfig, heldOut: ReadonlySet<string>, opts: ParallelOptions): AsyncGenerator<PreparedBatch> {
  const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
  const starts: number[] = [];
  for (let s = 0; s < config.n; s += chunk) starts.push(s);
  const size = (start: number) => Math.min(chunk, config.n - start);

  const workers = Math.min(opts.workers, starts.length);
  if (workers <= 1) {
    for (const start of starts) yield trainBatch(config, heldOut, start, size(start), opts.validation);
    return;
  }

  const init: WorkerInit = { config, heldOut: [...heldOut], validation: opts.validation ?? "sample" };
  const pool = Array.from({ length: workers }, () => new PoolWorker(init));
  const idle = [...pool];
  const limit = pLimit(workers);
  const submit = (id: number): Promise<PreparedBatch> => {
    const p = limit(async () => {
      const w = idle.pop()!;
      try {
        return await w.run({ id, start: starts[id], count: size(starts[id]) });
      } finally {
        idle.push(w);
      }
    });
    p.catch(() => {}); // awaited in order below; a later chunk's failure must not be "unhandled" meanwhile
    return p;
  };
  try {
    const inFlight: Array<Promise<PreparedBatch>> = [];
    let next = 0;
    while (next < starts.length && inFlight.length < 2 * workers) inFlight.push(submit(next++));
    while (inFlight.length > 0) {
      const batch = await inFlight.shift()!;
      if (next < starts.length) inFlight.push(submit(next++));
      yield batch;
    }
  } finally {
    limit.clearQueue();
    await Promise.all(pool.map((w) => w.worker.terminate()));
  }
}
