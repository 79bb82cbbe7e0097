/** The metrics effect-ane records, declared once and tagged with the model id at use. */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"

/** Successful compiles (cache hits do not count: they spend no budget). */
export const compilesTotal = Metric.counter("ane_compiles_total", {
  description: "ANE programs compiled and loaded",
  incremental: true
})

/** Completed evaluations, every entry point (sync, async, shared-event, pooled, streamed). */
export const evalsTotal = Metric.counter("ane_evals_total", {
  description: "ANE evaluations completed",
  incremental: true
})

/** Wall time of one evaluation in milliseconds, as seen from the host. */
export const evalDuration = Metric.histogram(
  "ane_eval_duration",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 20 }),
  "ANE evaluation wall time in milliseconds"
)

/** Evaluations submitted and not yet finished (async, pooled and streamed paths). */
export const inflight = Metric.gauge("ane_inflight", { description: "ANE evaluations in flight" })

/** The tag set every per-model metric carries. */
export const modelTags = (model: string): ReadonlyArray<MetricLabel.MetricLabel> => [MetricLabel.make("model", model)]
