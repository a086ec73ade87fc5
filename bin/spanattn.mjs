#!/usr/bin/env node
// The spanattn CLI entry: runs the single-file bundle that `npm run build` (run by
// `npm install` / `npm ci` through the prepare script) writes to dist/.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

const bundle = fileURLToPath(new URL("../dist/spanattn.mjs", import.meta.url));
if (!existsSync(bundle)) {
  process.stderr.write("error: the CLI is not built (dist/spanattn.mjs is missing)\nhint: run `npm install` or `npm run build` in the spanattn folder\n");
  process.exit(1);
}
const { main } = await import(pathToFileURL(bundle).href);
process.exitCode = await main(process.argv.slice(2));
