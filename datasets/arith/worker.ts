/**
 * Worker-thread entry of the parallel train generator (parallel.ts): receives the config
 * and the held-out canonical forms once, then answers {id, start, count} with the prepared
 * batch of those train records. Bundled as dist/arith-worker.mjs by scripts/build.mjs.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { ArithConfig } from "./config.js";
import { ArithGenerationError, type TrainValidation, trainBatch } from "./generate.js";

export interface WorkerInit {
  config: ArithConfig;
  heldOut: string[];
  validation: TrainValidation;
}
export interface WorkerTask {
  id: number;
  start: number;
  count: number;
}

const { config, heldOut, validation } = workerData as WorkerInit;
const taken = new Set(heldOut);

parentPort!.on("message", (task: WorkerTask) => {
  try {
    parentPort!.postMessage({ id: task.id, batch: trainBatch(config, taken, task.start, task.count, validation) });
  } catch (e) {
    const err = e as Error;
    const options = e instanceof ArithGenerationError ? e.options : undefined;
    parentPort!.postMessage({ id: task.id, error: { name: err.name, message: err.message, stack: err.stack, options } });
  }
});
