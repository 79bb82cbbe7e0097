/**
 * The MIL toolkit as one namespace: parse and print MIL text, check types and shapes, validate against the ANE's
 * rules, inspect programs, read and write weight blobs, build programs with a typed DSL, and generate common layers.
 */
export type * from "./ast.js"
export { equalIgnoringPositions, noPos } from "./ast.js"
export { parse, parseEffect, SYNTAX_CODE } from "./parser.js"
export type { ParseOptions, ParseResult } from "./parser.js"
export { print, printType } from "./printer.js"
export type { PrintOptions, PrintStyle } from "./printer.js"
export { check } from "./check.js"
export type { CheckResult, ConstValue, FunctionTypes, ValueType } from "./check.js"
export { rules, validate } from "./validate.js"
export { analyze, hasErrors } from "./analyze.js"
export { formatInspectReport, inspect } from "./inspect.js"
export { Blob } from "./blob.js"
export type { BlobDtype, BlobFile, BlobRecord } from "./blob.js"
export { build, Builder, buildSync } from "./build.js"
export type { BuildBody, BuildOptions, Built } from "./build.js"
export { Generators, GeneratorsEffect } from "./generators/index.js"
