/** `spanattn train`: not built yet (issue #5). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const trainOptionsSchema = z.object({}).passthrough();

export function trainCommand(): Command {
  return new Command("train")
    .description("fine-tune a causal LM on span-annotated data (not built yet)")
    .addHelpText("after", "\nExample (once it is built):\n  $ spanattn train --config configs/train/arith-tiny.yaml --data datasets/arith-small\n")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn train`");
    });
}
