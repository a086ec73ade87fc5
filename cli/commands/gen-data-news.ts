/** `spanattn gen-data news`: not built yet (issue #4). It says so plainly and exits non-zero. */
import { Command } from "commander";
import { z } from "zod";
import { NotBuiltError } from "../lib/errors.js";

export const genDataNewsOptionsSchema = z.object({}).passthrough();

export function genDataNewsCommand(): Command {
  return new Command("news")
    .description("generate a span-annotated news-summary dataset (not built yet)")
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      throw new NotBuiltError("`spanattn gen-data news`");
    });
}
