/** `spanattn gen-data arith`: not built yet (issue #3). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const genDataArithOptionsSchema = z.object({}).passthrough();

export function genDataArithCommand(): Command {
  return new Command("arith")
    .description("generate a span-annotated arithmetic dataset (not built yet)")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn gen-data arith`");
    });
}
