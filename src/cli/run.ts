/** `ane run` (placeholder until implemented). */
import { Command } from "@effect/cli"
import { Console } from "effect"

export const command = Command.make("run", {}, () => Console.error("ane run: not implemented yet"))
