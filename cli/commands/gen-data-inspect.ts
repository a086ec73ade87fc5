/** `spanattn gen-data inspect`: not built yet (issue #3). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const genDataInspectOptionsSchema = z.object({}).passthrough();

export function genDataInspectCommand(): Command {
  return new Command("inspect")
    .description("summarise a dataset and render a few records (not built yet)")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn gen-data inspect`");
    });
}
