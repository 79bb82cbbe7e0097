/** `ane check` (placeholder until implemented). */
import { Command } from "@effect/cli"
import { Console } from "effect"

export const command = Command.make("check", {}, () => Console.error("ane check: not implemented yet"))
