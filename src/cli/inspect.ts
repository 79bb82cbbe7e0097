/** `ane inspect` (placeholder until implemented). */
import { Command } from "@effect/cli"
import { Console } from "effect"

export const command = Command.make("inspect", {}, () => Console.error("ane inspect: not implemented yet"))
