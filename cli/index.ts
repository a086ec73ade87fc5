/**
 * The spanattn program: wires the commands, nothing else. `main(argv)` returns the exit
 * code; every error goes through one funnel (cli/lib/errors.ts).
 */
import { Command, CommanderError } from "commander";
import { buildKernelCommand } from "./commands/build-kernel.js";
import { doctorCommand } from "./commands/doctor.js";
import { evalRunCommand } from "./commands/eval.js";
import { genDataCommand } from "./commands/gen-data.js";
import { quickstartCommand } from "./commands/quickstart.js";
import { setupCommand } from "./commands/setup.js";
import { trainCommand } from "./commands/train.js";
import { widenCommand } from "./commands/widen.js";
import { runCleanups } from "./lib/cleanup.js";
import { reportError } from "./lib/errors.js";
import { packageVersion } from "./lib/paths.js";

export function buildProgram(): Command {
  const program = new Command("spanattn")
    .description("self-selected attention spans: train models that declare the context they need, decode reading only that")
    .version(packageVersion())
    .showSuggestionAfterError(true)
    .addCommand(quickstartCommand())
    .addCommand(setupCommand())
    .addCommand(doctorCommand())
    .addCommand(genDataCommand())
    .addCommand(trainCommand())
    .addCommand(widenCommand())
    .addCommand(buildKernelCommand())
    .addCommand(evalRunCommand())
    .addHelpText("after", "\nQuick start:\n  $ spanattn setup && spanattn quickstart\n\nRun `spanattn <command> --help` for a command's options and examples.\n");
  const configure = (cmd: Command) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  return program;
}

let signalsInstalled = false;

/** Ctrl-C outside a Python child: run cleanups (temp folders) and exit 130/143. */
function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  // `spanattn ... | head` closes our stdout early: that is not an error.
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") process.exit(0);
    throw e;
  });
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.on(sig, () => {
      // A running Python child has its own forwarding handler (cli/lib/python.ts).
      if (process.listenerCount(sig) > 1) return;
      runCleanups();
      process.stderr.write(`\ninterrupted (${sig})\n`);
      process.exit(code);
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  installSignalHandlers();
  const program = buildProgram();
  try {
    if (argv.length === 0) {
      program.outputHelp();
      return 2;
    }
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed help / the usage error.
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return 0;
      return 2;
    }
    runCleanups();
    const report = reportError(err);
    process.stderr.write(report.text + "\n");
    return report.exitCode;
  }
}
