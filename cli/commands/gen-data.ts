/** `spanattn gen-data`: the dataset generators, one subcommand each. */
import { Command } from "commander";
import { genDataArithCommand } from "./gen-data-arith.js";
import { genDataInspectCommand } from "./gen-data-inspect.js";
import { genDataNewsCommand } from "./gen-data-news.js";

export function genDataCommand(): Command {
  return new Command("gen-data")
    .description("generate span-annotated datasets (arith, news) and inspect them")
    .addCommand(genDataArithCommand())
    .addCommand(genDataNewsCommand())
    .addCommand(genDataInspectCommand())
    .addHelpText("after", "\nExamples:\n  $ spanattn gen-data arith --config configs/data/arith.yaml --out datasets/arith-small\n  $ spanattn gen-data news --input ../shared/data/news/cnndm-sample.jsonl --out datasets/news-cnndm\n  $ spanattn gen-data inspect datasets/arith-small\n");
}
