/** `spanattn build-kernel`: not built yet (issue #6). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const buildKernelOptionsSchema = z.object({}).passthrough();

export function buildKernelCommand(): Command {
  return new Command("build-kernel")
    .description("compile the sparse decode-attention CUDA kernel with nvcc (not built yet)")
    .addHelpText("after", "\nExample (once it is built):\n  $ spanattn build-kernel --arch sm_90a\n")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn build-kernel`");
    });
}
