/** `spanattn train`: not built yet (issue #5). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const trainOptionsSchema = z.object({}).passthrough();

export function trainCommand(): Command {
  return new Command("train")
    .description("fine-tune a causal LM on span-annotated data (not built yet)")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn train`");
    });
}
