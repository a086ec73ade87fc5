import { describe, expect, it } from "vitest";
import { ArithConfigSchema } from "../../../datasets/arith/config.js";
import { ArithGenerationError, SplitGenerator, heldOutSplits, recordId, trainBatch, trainRecords } from "../../../datasets/arith/generate.js";
import { parallelTrainBatches } from "../../../datasets/arith/parallel.js";
import { canonicalForm } from "../../../datasets/arith/print.js";
import { parseExpr } from "../../../datasets/arith/parse.js";
import { ValidRecordSchema } from "../../../datasets/schema.js";

const small = (over: Record<string, unknown> = {}) => ArithConfigSchema.parse({ n: 1200, val: 150, test: 150, testOod: 100, ...over });

const text = (batch: { data: Uint8Array }) => Buffer.from(batch.data).toString();

async function trainText(config: ReturnType<typeof small>, heldOut: Set<string>, workers: number, chunkSize: number): Promise<string> {
  let all = "";
  for await (const batch of parallelTrainBatches(config, heldOut, { workers, chunkSize })) all += text(batch);
  return all;
}

describe("records", () => {
  it("follow the data contract and DESIGN's shape", () => {
    const config = small();
    const [record] = [...trainRecords(config, new Set(), 0, 1)];
    expect(ValidRecordSchema.safeParse(record).success).toBe(true);
    expect(record.id).toBe("arith-s7-train-000001");
    expect(record.task).toBe("arith");
    expect(record.segments[0]).toEqual({ role: "header", text: "Evaluate step by step." });
    expect(record.segments[1].role).toBe("prompt");
    expect(record.segments.slice(2).every((s) => s.role === "response" && JSON.stringify(s.attend) === "[-1]")).toBe(true);
    expect(record.answer).toBe(record.segments[record.segments.length - 1].text);
    expect(Object.keys(record)).toEqual(["id", "task", "segments", "answer", "meta"]);
  });

  it("ids are per split, 1-based, padded to the split size", () => {
    const config = small({ n: 1_234_567 });
    expect(recordId(config, "train", 0)).toBe("arith-s7-train-0000001");
    expect(recordId(config, "test-ood", 41)).toBe("arith-s7-test-ood-000042");
  });

  it.each<[string, number[][]]>([
    ["none", [[], [], []]],
    ["prev", [[-1], [-1], [-1]]],
    ["window:3", [[-1], [-2, -1], [-3, -2, -1], [-3, -2, -1]]],
  ])("span %s: directives of the first responses", (span, want) => {
    const config = small({ span, ops: "4-6" });
    const [record] = [...trainRecords(config, new Set(), 0, 1)];
    const got = record.segments.slice(2).map((s) => s.attend ?? []);
    expect(got.slice(0, want.length)).toEqual(want);
    if (span === "none") expect(record.segments.some((s) => "attend" in s)).toBe(false);
  });

  it("print options change the text, not the expression", () => {
    const plain = [...trainRecords(small(), new Set(), 0, 20)];
    const fancy = [...trainRecords(small({ parens: "full", spaces: true }), new Set(), 0, 20)];
    for (let i = 0; i < plain.length; i++) {
      expect(canonicalForm(parseExpr(fancy[i].segments[1].text))).toBe(plain[i].segments[1].text);
      expect(fancy[i].answer).toBe(plain[i].answer);
    }
    expect(fancy.some((r, i) => r.segments[1].text !== plain[i].segments[1].text)).toBe(true);
  });
});

describe("splits", () => {
  it("no expression is in two splits, and held-out splits have their exact sizes", () => {
    // A small expression space (1-2 operations on 0..4) makes collisions certain without the dedupe.
    const config = small({ ops: "1-2", oodOps: "3-3", operands: "0-4", n: 3000, val: 300, test: 300, testOod: 300 });
    const { records, taken } = heldOutSplits(config);
    const owner = new Map<string, string>();
    for (const [split, recs] of Object.entries(records)) {
      expect(recs.length).toBe(300);
      for (const r of recs) {
        const key = r.segments[1].text;
        expect(owner.get(key) ?? split).toBe(split);
        owner.set(key, split);
      }
    }
    expect(taken.size).toBe(900);
    let clashes = 0;
    let repeats = 0;
    const seen = new Set<string>();
    for (const r of trainRecords(config, taken, 0, config.n)) {
      if (owner.has(r.segments[1].text)) clashes++;
      if (seen.has(r.segments[1].text)) repeats++;
      seen.add(r.segments[1].text);
    }
    expect(clashes).toBe(0);
    expect(repeats).toBeGreaterThan(0); // the space is small: train does repeat itself
  });

  it("test-ood has more operations than train", () => {
    const { records } = heldOutSplits(small());
    const ops = records["test-ood"].map((r) => r.meta!.ops as number);
    expect(Math.min(...ops)).toBe(11);
    expect(Math.max(...ops)).toBe(20);
  });

  it("a spec nothing satisfies is a generation error naming the options", () => {
    const config = small({ operators: "*", operands: "5-9", maxValue: 50, ops: "8" , oodOps: "9"});
    expect(() => new SplitGenerator(config, "train").expression(0)).toThrow(ArithGenerationError);
    try {
      new SplitGenerator(config, "train").expression(0);
    } catch (e) {
      expect((e as ArithGenerationError).options).toEqual(["operands", "operators", "maxValue", "ops"]);
    }
  });

  it("a held-out split larger than its expression space is an error, not a hang", () => {
    const config = small({ ops: "1", oodOps: "2", operands: "0-1", operators: "+", val: 50 });
    expect(() => heldOutSplits(config)).toThrow(/expression space is too small/);
  });
});

describe("determinism", () => {
  it("same config and seed give the same bytes; another seed does not", () => {
    const a = text(trainBatch(small(), new Set(), 0, 500));
    expect(text(trainBatch(small(), new Set(), 0, 500))).toBe(a);
    expect(text(trainBatch(small({ seed: 8 }), new Set(), 0, 500))).not.toBe(a);
  });

  it("a record does not depend on where its batch starts, nor on the validation mode", () => {
    const whole = text(trainBatch(small(), new Set(), 0, 300, "all"));
    const parts = text(trainBatch(small(), new Set(), 0, 123)) + text(trainBatch(small(), new Set(), 123, 177));
    expect(parts).toBe(whole);
  });

  it("1, 2 and 3 worker threads write identical bytes", async () => {
    const config = small({ n: 2000 });
    const { taken } = heldOutSplits(config);
    const one = await trainText(config, taken, 1, 97);
    expect(one.split("\n").length - 1).toBe(2000);
    expect(await trainText(config, taken, 2, 97)).toBe(one);
    expect(await trainText(config, taken, 3, 250)).toBe(one);
  });

  it("a worker's generation error reaches the caller as a generation error", async () => {
    // record 0 is fine (checked by the caller first in real runs); here every record fails.
    const config = small({ operators: "*", operands: "5-9", maxValue: 50, ops: "8", oodOps: "9", n: 40 });
    await expect(trainText(config, new Set(), 2, 10)).rejects.toThrow(ArithGenerationError);
  });
});
