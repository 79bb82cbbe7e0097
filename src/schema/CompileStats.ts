/** Wall-clock timings of one compile (spec/native-protocol.md §4.5). */
import * as Schema from "effect/Schema"

/** Nanosecond timings; all zero when the backend did not measure them. */
export class CompileStats extends Schema.Class<CompileStats>("CompileStats")({
  compileNs: Schema.Number,
  loadNs: Schema.Number,
  totalNs: Schema.Number
}) {
  /** True when timings were recorded (`totalNs > 0`). */
  get available(): boolean {
    return this.totalNs > 0
  }
  static readonly empty = CompileStats.make({ compileNs: 0, loadNs: 0, totalNs: 0 })
  override toString(): string {
    return this.available
      ? `CompileStats{compile=${this.compileNs}ns load=${this.loadNs}ns total=${this.totalNs}ns}`
      : "CompileStats{}"
  }
}
