// Build the CLI into one file (dist/spanattn.mjs) and export the data contract as JSON
// Schema (datasets/*.schema.json, committed; the Python loader reads them).
//   node scripts/build.mjs            build + export
//   node scripts/build.mjs --check    also fail if the committed schemas are stale
import { build } from "esbuild";
import { mkdirSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "warning",
  // ink loads react-devtools-core only when DEV=true, never in this CLI: stub it out.
  plugins: [
    {
      name: "stub-devtools",
      setup(b) {
        b.onResolve({ filter: /^react-devtools-core$/ }, () => ({ path: "devtools", namespace: "stub" }));
        b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "export default { initialize() {}, connectToDevTools() {} };" }));
      },
    },
  ],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  define: { "process.env.NODE_ENV": '"production"' },
};

mkdirSync(join(root, "dist"), { recursive: true });
await build({ ...common, entryPoints: [join(root, "cli/index.ts")], outfile: join(root, "dist/spanattn.mjs") });
// The arith generator's worker threads load this file, found beside the bundle (datasets/arith/parallel.ts).
await build({ ...common, entryPoints: [join(root, "datasets/arith/worker.ts")], outfile: join(root, "dist/arith-worker.mjs") });

const tmp = join(root, "dist/.schema-export.mjs");
await build({ ...common, entryPoints: [join(root, "scripts/export-schema.ts")], outfile: tmp });
const { exportSchemas } = await import(pathToFileURL(tmp).href);
rmSync(tmp);
let stale = [];
for (const [file, schema] of Object.entries(exportSchemas())) {
  const path = join(root, file);
  const text = JSON.stringify(schema, null, 2) + "\n";
  let old = "";
  try {
    old = readFileSync(path, "utf8");
  } catch {}
  if (old !== text) {
    stale.push(file);
    writeFileSync(path, text);
  }
}
if (process.argv.includes("--check") && stale.length) {
  console.error(`stale JSON Schema files (regenerated, commit them): ${stale.join(", ")}`);
  process.exit(1);
}
