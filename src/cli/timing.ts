/** The engine time the CLI reports: measured on hardware; on the simulator, what the latency model says a call costs. */
import type { EvalStats } from "../schema/Telemetry.js"
import { chipProfiles } from "../sim/latency.js"

/** Engine time of one eval in ns and where it comes from, or undefined when the backend reports none. */
export interface EngineTime {
  readonly ns: number
  readonly source: "hardware" | "modelled"
}

/**
 * The engine's time for one call. The simulator's `hwExecutionNs` is FLOPs over throughput only; a modelled engine
 * call also pays the chip's dispatch floor (src/sim/latency.ts), so the floor is added here.
 */
export const engineTime = (stats: EvalStats, architecture: string): EngineTime | undefined => {
  if (stats.source === "unavailable") return undefined
  if (stats.source === "hardware") return { ns: stats.hwExecutionNs, source: "hardware" }
  const chip = Object.values(chipProfiles).find((p) => p.architecture === architecture) ?? chipProfiles.m4
  return { ns: stats.hwExecutionNs + chip.dispatchUs * 1000, source: "modelled" }
}

const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(6)).toString() : String(x))

/** `engine 97.9 µs, modelled` style text. */
export const formatEngineTime = (t: EngineTime): string => {
  const ms = t.ns / 1e6
  return `engine ${ms < 1 ? `${fmt(ms * 1000)} µs` : `${fmt(ms)} ms`}, ${t.source}`
}
