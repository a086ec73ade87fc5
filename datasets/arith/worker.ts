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
    const batch = trainBatch(config, taken, task.start, task.count, validation);
    // Hand the bytes over instead of copying them, when the buffer is the batch's alone.
    const own = batch.data.byteOffset === 0 && batch.data.byteLength === batch.data.buffer.byteLength;
    parentPort!.postMessage({ id: task.id, batch }, own ? [batch.data.buffer as ArrayBuffer] : []);
  } catch (e) {
    const err = e as Error;
    const options = e instanceof ArithGenerationError ? e.options : undefined;
    parentPort!.postMessage({ id: task.id, error: { name: err.name, message: err.message, stack: err.stack, options } });
  }
});
