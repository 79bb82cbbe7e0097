/**
 * The command line of `ane`: options, positional arguments and subcommands over Node's `util.parseArgs`, with help
 * text and one-line usage errors. It keeps the small part of `@effect/cli`'s API the commands use (`Options.text`,
 * `Options.choice`, `Options.optional`, `Args.text`, `Command.make`, …), without that package's start-up cost
 * (its config-file parsers, printer and platform layers are most of what `ane` loaded before doing any work).
 */
import { parseArgs } from "node:util"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { type Pipeable, pipeArguments } from "effect/Pipeable"

/** Bad arguments: one line, said to the user as is, about `command` when one was named. */
export class UsageError extends Data.TaggedError("UsageError")<{
  readonly message: string
  readonly command?: string | undefined
}> {}

type Kind = "text" | "integer" | "boolean" | "choice"

/** A command-line option (`--name value`, `--name=value`, or a flag) decoding to `A`. */
export interface Option_<A> extends Pipeable {
  readonly _tag: "Option"
  readonly name: string
  readonly kind: Kind
  readonly choices: ReadonlyArray<string>
  readonly description: string
  readonly multiple: boolean
  /** From the values given (none, one, or several for a repeated option) to the value, or a usage message. */
  readonly decode: (values: ReadonlyArray<string | boolean>) => { readonly ok: A } | { readonly error: string }
  readonly _A?: A
}

/** A positional argument decoding to `A`. */
export interface Arg<A> extends Pipeable {
  readonly _tag: "Arg"
  readonly name: string
  readonly description: string
  readonly decode: (value: string | undefined) => { readonly ok: A } | { readonly error: string }
  readonly _A?: A
}

const proto = { pipe(this: unknown) { return pipeArguments(this, arguments) } }
const make = <T extends Pipeable>(fields: Omit<T, "pipe">): T => Object.assign(Object.create(proto), fields)

const single = (name: string, values: ReadonlyArray<string | boolean>) =>
  values.length > 1 ? `--${name} is given ${values.length} times; give it once` : undefined

const convert = (o: Option_<unknown>, raw: string | boolean): { readonly ok: unknown } | { readonly error: string } => {
  if (o.kind === "boolean" || typeof raw === "boolean") return { ok: raw }
  if (o.kind === "integer") {
    return /^[+-]?\d+$/.test(raw.trim()) && Number.isSafeInteger(Number(raw))
      ? { ok: Number(raw) }
      : { error: `--${o.name}: expected an integer, got ${JSON.stringify(raw)}` }
  }
  if (o.kind === "choice" && !o.choices.includes(raw)) {
    return { error: `--${o.name}: expected one of ${o.choices.join(", ")}, got ${JSON.stringify(raw)}` }
  }
  return { ok: raw }
}

const basic = <A>(name: string, kind: Kind, choices: ReadonlyArray<string> = []): Option_<A> => {
  const self: Option_<A> = make<Option_<A>>({
    _tag: "Option" as const,
    name,
    kind,
    choices,
    description: "",
    multiple: false,
    decode: (values: ReadonlyArray<string | boolean>) => {
      const twice = single(name, values)
      if (twice !== undefined) return { error: twice }
      if (values.length === 0) return kind === "boolean" ? { ok: false as A } : { error: `missing --${name}` }
      return convert(self as Option_<unknown>, values[0]!) as { ok: A } | { error: string }
    }
  })
  return self
}

const derive = <A, B>(self: Option_<A>, fields: Partial<Option_<B>>): Option_<B> =>
  make<Option_<B>>({ ...(self as unknown as Option_<B>), ...fields })

/** Options, as `@effect/cli` spells them. */
export const Options = {
  /** `--name <text>`. */
  text: (name: string): Option_<string> => basic(name, "text"),
  /** `--name <integer>`: decimal digits, optionally signed. */
  integer: (name: string): Option_<number> => basic(name, "integer"),
  /** A flag: `--name` is true, absent is false. */
  boolean: (name: string): Option_<boolean> => basic(name, "boolean"),
  /** `--name <one of choices>`. */
  choice: <const C extends ReadonlyArray<string>>(name: string, choices: C): Option_<C[number]> =>
    basic(name, "choice", choices),
  /** The help line of an option. */
  withDescription: (description: string) => <A>(self: Option_<A>): Option_<A> => derive(self, { description }),
  /** The value when the option is absent. */
  withDefault: <const B>(fallback: B) => <A>(self: Option_<A>): Option_<A | B> =>
    derive<A, A | B>(self, {
      decode: (values) => values.length === 0 ? { ok: fallback } : self.decode(values)
    }),
  /** `Some(value)` when given, else `None`. */
  optional: <A>(self: Option_<A>): Option_<Option.Option<A>> =>
    derive(self, {
      decode: (values) => {
        if (values.length === 0) return { ok: Option.none() }
        const r = self.decode(values)
        return "ok" in r ? { ok: Option.some(r.ok) } : r
      }
    }),
  /** Every value given, in order (none is an empty array). */
  repeated: <A>(self: Option_<A>): Option_<Array<A>> =>
    derive(self, {
      multiple: true,
      decode: (values) => {
        const out: Array<A> = []
        for (const v of values) {
          const r = self.decode([v])
          if ("error" in r) return r
          out.push(r.ok)
        }
        return { ok: out }
      }
    })
}

/** Positional arguments, as `@effect/cli` spells them. */
export const Args = {
  /** A required positional argument. */
  text: (config: { readonly name: string }): Arg<string> =>
    make<Arg<string>>({
      _tag: "Arg" as const,
      name: config.name,
      description: "",
      decode: (value: string | undefined) => value === undefined ? { error: `missing <${config.name}>` } : { ok: value }
    }),
  /** The help line of an argument. */
  withDescription: (description: string) => <A>(self: Arg<A>): Arg<A> => make<Arg<A>>({ ...self, description })
}

type Param = Option_<any> | Arg<any>
type Values<C extends Record<string, Param>> = {
  readonly [K in keyof C]: C[K] extends Option_<infer A> ? A : C[K] extends Arg<infer A> ? A : never
}

/** A command: its parameters and what it does, or its subcommands. */
export interface Command_<E, R> extends Pipeable {
  readonly name: string
  readonly description: string
  readonly params: Readonly<Record<string, Param>>
  readonly handler?: (values: any) => Effect.Effect<void, E, R>
  readonly subcommands: ReadonlyArray<Command_<any, any>>
}

/** Commands, as `@effect/cli` spells them. */
export const Command = {
  /** A command with parameters and a handler, or (name only) a group for {@link Command.withSubcommands}. */
  make: (<C extends Record<string, Param>, E, R>(
    name: string,
    params?: C,
    handler?: (values: Values<C>) => Effect.Effect<void, E, R>
  ): Command_<E, R> =>
    make<Command_<E, R>>({ name, description: "", params: params ?? {}, ...(handler ? { handler } : {}), subcommands: [] })) as {
    (name: string): Command_<never, never>
    <C extends Record<string, Param>, E, R>(
      name: string,
      params: C,
      handler: (values: Values<C>) => Effect.Effect<void, E, R>
    ): Command_<E, R>
  },
  /** The one-line summary shown in help. */
  withDescription: (description: string) => <E, R>(self: Command_<E, R>): Command_<E, R> =>
    make<Command_<E, R>>({ ...self, description }),
  /** Subcommands of a group. */
  withSubcommands: <S extends ReadonlyArray<Command_<any, any>>>(subcommands: S) =>
  <E, R>(self: Command_<E, R>): Command_<
    E | (S[number] extends Command_<infer E2, any> ? E2 : never),
    R | (S[number] extends Command_<any, infer R2> ? R2 : never)
  > => make<Command_<any, any>>({ ...self, subcommands }) as never
}

/** Parameters in help order: arguments, then options. */
const split = (c: Command_<any, any>) => {
  const entries = Object.entries(c.params)
  return {
    args: entries.map(([, p]) => p).filter((p): p is Arg<unknown> => p._tag === "Arg"),
    options: entries.map(([, p]) => p).filter((p): p is Option_<unknown> => p._tag === "Option")
  }
}

/** Styles for help text: bold headings when colour is wanted. */
const style = (color: boolean) => ({ h: (s: string) => color ? `\u001b[1m${s}\u001b[0m` : s })

const optionUsage = (o: Option_<unknown>): string =>
  o.kind === "boolean" ? `--${o.name}` : `--${o.name} ${o.kind === "choice" ? o.choices.join("|") : `<${o.kind}>`}`

/** `text` broken at spaces into lines of at most `width` columns: the first starts with `first`, the rest with `rest`. */
export const wrap = (text: string, width: number, first: string, rest: string): Array<string> => {
  const out: Array<string> = []
  let line = first
  for (const word of text.split(/ +/).filter((w) => w !== "")) {
    const bare = line === first || line === rest
    if (!bare && line.length + 1 + word.length > width) {
      out.push(line)
      line = rest + word
    } else line = bare ? line + word : `${line} ${word}`
  }
  out.push(line)
  return out
}

/** Two columns: the left padded, the right wrapped beside it; a long left entry gets a line of its own. */
const rows = (items: ReadonlyArray<readonly [string, string]>, width: number): Array<string> => {
  const left = Math.min(24, Math.max(...items.map(([l]) => l.length)))
  const hang = " ".repeat(2 + left + 2)
  return items.flatMap(([l, r]) =>
    l.length > left
      ? [`  ${l}`, ...wrap(r, width, hang, hang)]
      : wrap(r, width, `  ${l.padEnd(left)}  `, hang)
  )
}

/** Help text of `command` (the group's own when undefined) under `program`, `footer` last, lines of `width` at most. */
export const helpText = (
  program: string,
  root: Command_<any, any>,
  command: Command_<any, any> | undefined,
  footer: { readonly title: string; readonly lines: ReadonlyArray<string> },
  options: { readonly color: boolean; readonly width: number }
): string => {
  const { h } = style(options.color)
  const w = options.width
  const out: Array<string> = []
  if (command === undefined) {
    out.push(...wrap(`${program}: ${root.description}`, w, "", "  "), "", h("USAGE"), `  $ ${program} <command> [options]`,
      "", ...wrap(`\`${program} <command> --help\` shows a command's arguments and options.`, w, "  ", "  "), "",
      h("COMMANDS"), ...rows(root.subcommands.map((c) => [c.name, c.description]), w), "", h("OPTIONS"),
      ...rows([["-h, --help", "this help"], ["--version", `the version of ${program}`]], w))
  } else {
    const { args, options: opts } = split(command)
    out.push(...wrap(`${program} ${command.name}: ${command.description}`, w, "", "  "), "", h("USAGE"),
      ...wrap(`$ ${program} ${command.name}${args.map((a) => ` <${a.name}>`).join("")}${opts.length > 0 ? " [options]" : ""}`,
        w, "  ", "      "))
    if (args.length > 0) out.push("", h("ARGUMENTS"), ...rows(args.map((a) => [`<${a.name}>`, a.description]), w))
    out.push("", h("OPTIONS"), ...rows([
      ...opts.map((o): readonly [string, string] =>
        [optionUsage(o), o.description + (o.multiple && !o.description.includes("repeatable") ? " (repeatable)" : "")]),
      ["-h, --help", "this help"]
    ], w))
  }
  out.push("", h(footer.title), ...footer.lines.flatMap((l) => wrap(l, w, "  ", "     ")))
  return out.join("\n")
}

/** What the command line asks for. */
export type Parsed<E, R> =
  | { readonly _tag: "Help"; readonly command: Command_<E, R> | undefined }
  | { readonly _tag: "Version" }
  | { readonly _tag: "Run"; readonly command: Command_<E, R>; readonly run: Effect.Effect<void, E, R> }

/** Reads `args` (after the program name) against `root`'s subcommands; a mistake is a {@link UsageError}. */
export const parse = <E, R>(root: Command_<E, R>, args: ReadonlyArray<string>): Effect.Effect<Parsed<E, R>, UsageError> =>
  Effect.suspend((): Effect.Effect<Parsed<E, R>, UsageError> => {
    const wantsHelp = args.includes("--help") || args.includes("-h")
    const [first, ...rest] = args
    if (first === undefined) return Effect.succeed({ _tag: "Help", command: undefined } as const)
    if (first === "--version" && rest.length === 0) return Effect.succeed({ _tag: "Version" } as const)
    const command = root.subcommands.find((c) => c.name === first) as Command_<E, R> | undefined
    if (command === undefined) {
      if (wantsHelp && first.startsWith("-")) return Effect.succeed({ _tag: "Help", command: undefined } as const)
      const names = root.subcommands.map((c) => c.name).join(", ")
      return Effect.fail(new UsageError({
        message: first.startsWith("-")
          ? `expected a command (${names}) before ${first}`
          : `unknown command ${JSON.stringify(first)}; expected one of ${names}`
      }))
    }
    if (wantsHelp) return Effect.succeed({ _tag: "Help", command } as const)
    const { args: positionals, options } = split(command)
    // A negative number after an option that takes a value is that value (parseArgs would call it ambiguous).
    const valued = new Set(options.filter((o) => o.kind !== "boolean").map((o) => `--${o.name}`))
    const joined: Array<string> = []
    for (let i = 0; i < rest.length; i++) {
      const next = rest[i + 1]
      if (valued.has(rest[i]!) && next !== undefined && /^-\d/.test(next)) joined.push(`${rest[i]}=${next}`), i++
      else joined.push(rest[i]!)
    }
    let parsed: ReturnType<typeof parseArgs>
    try {
      parsed = parseArgs({
        args: joined,
        strict: true,
        allowPositionals: true,
        options: Object.fromEntries(options.map((o) => [o.name, { type: o.kind === "boolean" ? "boolean" : "string", multiple: true }]))
      })
    } catch (e) {
      // parseArgs' messages are several sentences; the first says what was wrong.
      const text = e instanceof Error ? e.message : String(e)
      return Effect.fail(new UsageError({ command: command.name, message: text.split(/(?<=\.) /)[0]!.replace(/\.$/, "") }))
    }
    const values: Record<string, unknown> = {}
    const given = parsed.values as Record<string, ReadonlyArray<string | boolean> | undefined>
    for (const [key, p] of Object.entries(command.params)) {
      const r = p._tag === "Option"
        ? p.decode(given[p.name] ?? [])
        : p.decode(parsed.positionals[positionals.indexOf(p)])
      if ("error" in r) return Effect.fail(new UsageError({ command: command.name, message: r.error }))
      values[key] = r.ok
    }
    if (parsed.positionals.length > positionals.length) {
      const extra = parsed.positionals[positionals.length]!
      return Effect.fail(new UsageError({ command: command.name, message: `unexpected argument ${JSON.stringify(extra)}` }))
    }
    const handler = command.handler
    if (handler === undefined) return Effect.fail(new UsageError({ command: command.name, message: "expected a subcommand" }))
    return Effect.succeed({ _tag: "Run", command, run: handler(values) } as const)
  })
