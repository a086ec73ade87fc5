/** `spanattn eval`: not built yet (issue #7). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const evalRunOptionsSchema = z.object({}).passthrough();

export function evalRunCommand(): Command {
  return new Command("eval")
    .description("accuracy and decode throughput, sparse vs dense (not built yet)")
    .addHelpText("after", "\nExample (once it is built):\n  $ spanattn eval --run runs/arith-tiny --data datasets/arith-small --throughput\n")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn eval`");
    });
}
