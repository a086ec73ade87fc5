/** Helpers for end-to-end tests: run the built CLI as a user would, in temp folders. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";

export const repoRoot = fileURLToPath(new URL("..", import.meta.url));
export const cliPath = join(repoRoot, "bin", "spanattn.mjs");

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export async function cli(args: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; timeout?: number } = {}): Promise<CliRun> {
  const r = await execa(process.execPath, [cliPath, ...args], {
    reject: false,
    cwd: opts.cwd ?? repoRoot,
    env: { CI: "true", ...opts.env },
    extendEnv: true,
    timeout: opts.timeout ?? 120_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function tempDir(prefix = "spanattn-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
