/** Test helpers: wrap MIL statements into a program and run the parser + checker on it. */
import { check } from "../../src/mil/check.js"
import type { CheckResult, ValueType } from "../../src/mil/check.js"
import { parse } from "../../src/mil/parser.js"
import type { Program } from "../../src/mil/ast.js"

/** A one-function program around `body` (statements, one per line), returning `outputs`. */
export const milProgram = (inputs: string, body: string, outputs = "y", opset = "ios18", version = "1.3"): string =>
  `program(${version})\n` +
  `[buildInfo = dict<string, string>({{"coremlc-version", "3505.4.1"}})]\n` +
  `{\n` +
  `    func main<${opset}>(${inputs}) {\n` +
  body.trim().split("\n").map((l) => `        ${l.trim()}\n`).join("") +
  `    } -> (${outputs});\n` +
  `}\n`

/** Parses text that must be valid syntax. */
export const parseOk = (text: string): Program => {
  const r = parse(text)
  if (r.program === null) throw new Error(`test program does not parse: ${r.diagnostics.map((d) => d.message).join("; ")}`)
  return r.program
}

/** Parses and checks a one-function program. */
export const checkBody = (inputs: string, body: string, outputs = "y", opset = "ios18"): CheckResult =>
  check(parseOk(milProgram(inputs, body, outputs, opset)))

/** The resolved type of `name` in function `main`. */
export const typeIn = (r: CheckResult, name: string): ValueType | undefined => r.functions.get("main")?.types.get(name)

/** The shape of a tensor value (throws on non-tensors so a wrong kind fails the test). */
export const shapeIn = (r: CheckResult, name: string): ReadonlyArray<number | null> | null => {
  const t = typeIn(r, name)
  if (t === undefined || t.kind !== "tensor") throw new Error(`\`${name}\` is not a tensor: ${JSON.stringify(t)}`)
  return t.shape
}

/** Error messages of a result. */
export const errors = (r: CheckResult) => r.diagnostics.filter((d) => d.severity === "error")
