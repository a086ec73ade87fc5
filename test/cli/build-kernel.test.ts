/**
 * `spanattn build-kernel` end to end against a fake nvcc (a script that records its argv and
 * writes the -o file), in a temp project root (SPANATTN_ROOT). The real compile runs in the
 * suite's kernel compile check (scripts/test.mjs) wherever nvcc exists.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { buildKernelOptionsSchema, gencode, kernelManifestSchema, resolveArchs, runBuildKernel } from "../../cli/commands/build-kernel.js";
import { reportError } from "../../cli/lib/errors.js";
import { requireNvcc } from "../../cli/preflight/nvcc.js";
import { cli, repoRoot, tempDir } from "../helpers.js";

const FAKE_NVCC = `#!/usr/bin/env bash
if [ "$1" = "--version" ]; then echo "Cuda compilation tools, release 13.0, V13.0.88"; exit 0; fi
echo "$@" >> "$(dirname "$0")/calls.log"
if [ -n "\${FAKE_NVCC_FAIL:-}" ]; then echo "cuda/span_decode.cu(7): error: identifier \\"oops\\" is undefined" >&2; exit 2; fi
prev=""; for a in "$@"; do if [ "$prev" = "-o" ]; then echo "fake library" > "$a"; fi; prev="$a"; done
`;

interface Fixture {
  root: string;
  bin: string;
  env: Record<string, string>;
}

function fixture(): Fixture {
  const root = tempDir("spanattn-build-kernel-");
  mkdirSync(join(root, "cuda"));
  copyFileSync(join(repoRoot, "package.json"), join(root, "package.json"));
  copyFileSync(join(repoRoot, "cuda", "build.json"), join(root, "cuda", "build.json"));
  writeFileSync(join(root, "cuda", "span_decode.cu"), "// kernel v1\n");
  writeFileSync(join(root, "cuda", "span_decode.h"), "// header\n");
  writeFileSync(join(root, "cuda", "span_schedule.h"), "// schedule\n");
  const bin = join(root, "bin");
  mkdirSync(bin);
  writeFileSync(join(bin, "nvcc"), FAKE_NVCC);
  chmodSync(join(bin, "nvcc"), 0o755);
  return { root, bin, env: { SPANATTN_ROOT: root, PATH: `${bin}:${process.env.PATH}` } };
}

const calls = (f: Fixture) => (existsSync(join(f.bin, "calls.log")) ? readFileSync(join(f.bin, "calls.log"), "utf8").trim().split("\n") : []);
const manifest = (f: Fixture) => kernelManifestSchema.parse(JSON.parse(readFileSync(join(f.root, "cuda", "build", "manifest.json"), "utf8")));

describe("arch handling", () => {
  it("writes SASS-only gencode for arch-specific targets and SASS + PTX otherwise", () => {
    expect(gencode("sm_90a")).toBe("-gencode=arch=compute_90a,code=sm_90a");
    expect(gencode("sm_80")).toBe("-gencode=arch=compute_80,code=[sm_80,compute_80]");
  });

  it("adds the local GPU's arch only when no default runs natively on it", () => {
    const defaults = ["sm_90a", "sm_80"];
    expect(resolveArchs(defaults, undefined, [])).toEqual(defaults);
    expect(resolveArchs(defaults, undefined, [{ name: "H200", computeCapability: "9.0" }])).toEqual(defaults);
    expect(resolveArchs(defaults, undefined, [{ name: "L4", computeCapability: "8.9" }])).toEqual([...defaults, "sm_89"]);
    expect(resolveArchs(defaults, ["sm_100a", "sm_100a"], [{ name: "x", computeCapability: "8.0" }])).toEqual(["sm_100a"]);
  });

  it("rejects a malformed arch through the schema", () => {
    const r = buildKernelOptionsSchema.safeParse({ arch: ["sm90"] });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].message).toBe("expected an arch like sm_90a or sm_80");
  });
});

describe("spanattn build-kernel", () => {
  let f: Fixture;
  beforeEach(() => {
    f = fixture();
  });

  it("builds, records a manifest, then skips until a source, arch or --force changes", async () => {
    const first = await cli(["build-kernel", "--json"], { env: f.env });
    expect(first.exitCode, first.stderr).toBe(0);
    const built = JSON.parse(first.stdout);
    expect(built).toMatchObject({ status: "built", library: "cuda/build/libspanattn.so", archs: ["sm_90a", "sm_80"], nvcc: { version: "13.0" } });
    expect(readFileSync(join(f.root, "cuda", "build", "libspanattn.so"), "utf8")).toBe("fake library\n");
    const m = manifest(f);
    expect(m.command).toEqual(expect.arrayContaining(["-O3", "-shared", "-gencode=arch=compute_90a,code=sm_90a", "-gencode=arch=compute_80,code=[sm_80,compute_80]"]));
    expect(Object.keys(m.sources)).toEqual(["span_decode.cu", "span_decode.h", "span_schedule.h"]);
    expect(m.sourceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(readdirSync(join(f.root, "cuda", "build")).filter((n) => n.includes(".tmp-"))).toEqual([]);

    const second = await cli(["build-kernel", "--json"], { env: f.env });
    expect(JSON.parse(second.stdout).status).toBe("up-to-date");
    expect(calls(f)).toHaveLength(1);

    writeFileSync(join(f.root, "cuda", "span_decode.h"), "// header v2\n");
    expect(JSON.parse((await cli(["build-kernel", "--json"], { env: f.env })).stdout).status).toBe("built");
    expect(manifest(f).sourceHash).not.toBe(m.sourceHash);

    const human = await cli(["build-kernel"], { env: f.env });
    expect(human.stdout).toMatch(/is up to date; nothing to do/);
    expect(JSON.parse((await cli(["build-kernel", "--json", "--force"], { env: f.env })).stdout).status).toBe("built");
    const narrow = JSON.parse((await cli(["build-kernel", "--json", "--arch", "sm_80"], { env: f.env })).stdout);
    expect(narrow).toMatchObject({ status: "built", archs: ["sm_80"] });
    expect(calls(f)).toHaveLength(4);
    expect(calls(f)[3]).not.toMatch(/sm_90a/);
  });

  it("--debug switches to the debug flags and is recorded", async () => {
    const r = await cli(["build-kernel", "--json", "--debug"], { env: f.env });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(manifest(f)).toMatchObject({ debug: true });
    expect(manifest(f).command).toEqual(expect.arrayContaining(["-G", "-O0"]));
  });

  it("an nvcc failure exits 1 with nvcc's last lines and leaves no library behind", async () => {
    const r = await cli(["build-kernel"], { env: { ...f.env, FAKE_NVCC_FAIL: "1" } });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/error: nvcc failed \(exit 2\)/);
    expect(r.stderr).toMatch(/identifier "oops" is undefined/);
    expect(r.stderr).toMatch(/hint: /);
    expect(existsSync(join(f.root, "cuda", "build", "libspanattn.so"))).toBe(false);
    expect(readdirSync(join(f.root, "cuda", "build")).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  it("a bad --arch is a usage error (exit 2) naming the option", async () => {
    const r = await cli(["build-kernel", "--arch", "ampere"], { env: f.env });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/- arch\.0: expected an arch like sm_90a or sm_80/);
  });

  it("missing nvcc says where it looked and how to fix it", async () => {
    const err = await runBuildKernel(buildKernelOptionsSchema.parse({}), {
      root: f.root,
      findNvcc: () => requireNvcc([join(f.root, "nowhere", "nvcc")]),
      detectGpus: async () => [],
    }).catch((e: unknown) => e);
    const report = reportError(err);
    expect(report.exitCode).toBe(1);
    expect(report.text).toMatch(/error: nvcc \(the CUDA compiler\) was not found/);
    expect(report.text).toMatch(/looked for: .*nowhere\/nvcc/);
    expect(report.text).toMatch(/hint: install the CUDA toolkit .* or set CUDA_HOME/);
  });
});
