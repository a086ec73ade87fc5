/** Where the project lives, wherever the CLI runs from (sources under tsx/vitest or the bundle). */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, "utf8")).name === "spanattn") return dir;
      } catch {
        // keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("internal: cannot find the spanattn project root above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export const projectRoot = process.env.SPANATTN_ROOT ? resolve(process.env.SPANATTN_ROOT) : findRoot();
export const pythonSourceDir = join(projectRoot, "python");
export const venvDir = join(projectRoot, ".venv");
export const venvPython = join(venvDir, "bin", "python");
export const kernelBuildDir = join(projectRoot, "cuda", "build");

export function packageVersion(): string {
  return JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")).version;
}
