/**
 * An independent check of arithmetic records, sharing no code with the generator's
 * parser, evaluator or reducer: expressions are read by a shunting-yard into postfix
 * (RPN), where an innermost operation is simply `number number operator`, evaluated with
 * floor division written another way (from the truncated remainder), and each step must be
 * the previous postfix with the leftmost (or every) such triple folded. Used by the tests
 * and by `spanattn gen-data inspect --verify`.
 */
import type { DatasetRecord } from "../schema.js";

type Token = { n: bigint } | { op: string };

const PREC: Record<string, number> = { "+": 1, "-": 1, "*": 2, "//": 2, "%": 2 };

/** Postfix of an infix expression; throws on anything it cannot read. */
export function toPostfix(text: string): Token[] {
  const out: Token[] = [];
  const ops: string[] = [];
  let expectOperand = true;
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === " ") {
      i++;
    } else if (expectOperand && (c === "-" || (c >= "0" && c <= "9"))) {
      let j = c === "-" ? i + 1 : i;
      while (j < text.length && text[j] >= "0" && text[j] <= "9") j++;
      if (j === i || (c === "-" && j === i + 1)) throw new Error(`no number at ${i} in ${JSON.stringify(text)}`);
      out.push({ n: BigInt(text.slice(i, j)) });
      i = j;
      expectOperand = false;
    } else if (expectOperand && c === "(") {
      ops.push("(");
      i++;
    } else if (!expectOperand && c === ")") {
      while (ops.length && ops[ops.length - 1] !== "(") out.push({ op: ops.pop()! });
      if (ops.pop() !== "(") throw new Error(`unbalanced ')' at ${i} in ${JSON.stringify(text)}`);
      i++;
    } else if (!expectOperand) {
      const op = text.startsWith("//", i) ? "//" : c;
      if (!(op in PREC)) throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in ${JSON.stringify(text)}`);
      // left-associative: pop operators that bind at least as tightly
      while (ops.length && ops[ops.length - 1] !== "(" && PREC[ops[ops.length - 1]] >= PREC[op]) out.push({ op: ops.pop()! });
      ops.push(op);
      i += op.length;
      expectOperand = true;
    } else {
      throw new Error(`unexpected ${JSON.stringify(c)} at ${i} in ${JSON.stringify(text)}`);
    }
  }
  if (expectOperand) throw new Error(`expression ends early: ${JSON.stringify(text)}`);
  while (ops.length) {
    const op = ops.pop()!;
    if (op === "(") throw new Error(`unbalanced '(' in ${JSON.stringify(text)}`);
    out.push({ op });
  }
  return out;
}

function apply(op: string, a: bigint, b: bigint): bigint {
  if (op === "+") return a + b;
  if (op === "-") return a - b;
  if (op === "*") return a * b;
  if (b === 0n) throw new Error(`${op} by zero`);
  // floor semantics from the truncated remainder: r takes the divisor's sign
  let r = a % b;
  if (r !== 0n && (r < 0n) !== (b < 0n)) r += b;
  return op === "%" ? r : (a - r) / b;
}

export function evalPostfix(rpn: Token[]): bigint {
  const stack: bigint[] = [];
  for (const t of rpn) {
    if ("n" in t) stack.push(t.n);
    else {
      const b = stack.pop()!;
      const a = stack.pop()!;
      stack.push(apply(t.op, a, b));
    }
  }
  if (stack.length !== 1) throw new Error("malformed postfix");
  return stack[0];
}

/** Fold the leftmost `number number operator` triple, or every one (they never overlap). */
export function foldPostfix(rpn: Token[], strategy: "leftmost" | "parallel"): Token[] {
  const out: Token[] = [];
  let folded = 0;
  for (const t of rpn) {
    const a = out[out.length - 2];
    const b = out[out.length - 1];
    // a triple is only innermost if its operands are original numbers, not ones folded this step
    if ("op" in t && a && b && "n" in a && "n" in b && !(a as { fresh?: boolean }).fresh && !(b as { fresh?: boolean }).fresh && (strategy === "parallel" || folded === 0)) {
      out.length -= 2;
      out.push({ n: apply(t.op, a.n, b.n), fresh: true } as Token);
      folded++;
    } else out.push(t);
  }
  return out.map((t) => ("n" in t ? { n: t.n } : t));
}

const key = (rpn: Token[]) => rpn.map((t) => ("n" in t ? t.n.toString() : t.op)).join(" ");

/** The expression as postfix text: equal for two expressions exactly when their trees are. */
export function postfixKey(text: string): string {
  return key(toPostfix(text));
}

export interface ArithExpectations {
  strategy?: string;
  span?: string;
  maxValue?: number | null;
}

/** Problems of one record (empty when it is right). `expect` comes from the manifest's config. */
export function verifyArithRecord(record: DatasetRecord, expect: ArithExpectations = {}): string[] {
  const problems: string[] = [];
  const segs = record.segments;
  const prompt = segs[1];
  const responses = segs.slice(2);
  if (prompt?.role !== "prompt" || responses.length === 0 || responses.some((s) => s.role !== "response")) {
    return ["expected header, one prompt, then responses"];
  }
  const meta = (record.meta ?? {}) as Record<string, unknown>;
  const strategy = (expect.strategy ?? meta.strategy) as string;
  if (strategy !== "leftmost" && strategy !== "parallel") return [`unknown strategy ${JSON.stringify(strategy)}`];
  if (expect.strategy && meta.strategy !== expect.strategy) problems.push(`meta.strategy ${JSON.stringify(meta.strategy)} but the dataset uses ${expect.strategy}`);
  let cur: Token[];
  try {
    cur = toPostfix(prompt.text);
    const value = evalPostfix(cur);
    if (record.answer !== value.toString()) problems.push(`answer ${JSON.stringify(record.answer)} but the prompt evaluates to ${value}`);
  } catch (e) {
    return [`prompt: ${(e as Error).message}`];
  }
  const ops = cur.filter((t) => "op" in t).length;
  if (meta.ops !== ops) problems.push(`meta.ops ${meta.ops} but the prompt has ${ops} operations`);
  if (meta.steps !== responses.length) problems.push(`meta.steps ${meta.steps} but there are ${responses.length} responses`);
  const cap = expect.maxValue == null ? null : BigInt(expect.maxValue);
  const checkCap = (rpn: Token[], where: string) => {
    for (const t of rpn) if (cap != null && "n" in t && (t.n > cap || t.n < -cap)) problems.push(`${where}: value ${t.n} exceeds maxValue ${cap}`);
  };
  checkCap(cur, "prompt");
  responses.forEach((seg, k) => {
    const where = `segments.${k + 2}`;
    const want = directiveFor(expect.span, k + 2);
    if (expect.span && JSON.stringify(seg.attend) !== JSON.stringify(want)) problems.push(`${where}.attend: ${JSON.stringify(seg.attend)} but span ${expect.span} gives ${JSON.stringify(want)}`);
    let expected: Token[];
    try {
      expected = foldPostfix(cur, strategy);
    } catch (e) {
      problems.push(`${where}: ${(e as Error).message}`);
      return;
    }
    let got: Token[];
    try {
      got = toPostfix(seg.text);
    } catch (e) {
      problems.push(`${where}: ${(e as Error).message}`);
      cur = expected;
      return;
    }
    if (key(got) !== key(expected)) problems.push(`${where}: ${JSON.stringify(seg.text)} is not one ${strategy} step from the previous expression (expected postfix ${key(expected)})`);
    checkCap(got, where);
    cur = got;
  });
  if (cur.length !== 1) problems.push(`the last response ${JSON.stringify(responses[responses.length - 1].text)} is not a number`);
  else if (responses[responses.length - 1].text !== record.answer) problems.push(`the last response ${JSON.stringify(responses[responses.length - 1].text)} differs from answer ${JSON.stringify(record.answer)}`);
  return problems;
}

function directiveFor(span: string | undefined, index: number): number[] | undefined {
  if (span == null || span === "none") return undefined;
  if (span === "prev") return [-1];
  const k = Math.min(Number(span.split(":")[1]), index - 1);
  const refs: number[] = [];
  for (let r = -k; r <= -1; r++) refs.push(r);
  return refs;
}
