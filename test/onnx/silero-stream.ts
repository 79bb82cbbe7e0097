/** The Silero acceptance stream: 4 s of deterministic speech-like audio at 16 kHz, cut into 512-sample chunks. */
import { rng } from "./graph.js"

/** Stream geometry: 512-sample chunks with 64 samples of context, 125 chunks = 4 s at 16 kHz. */
export const SILERO = { rate: 16000, chunk: 512, context: 64, chunks: 125 } as const

/**
 * Silence, then a voiced segment (harmonics of a gliding 110–220 Hz pitch, 4 Hz syllable envelope, breath noise),
 * then low noise: enough contrast for the detector's probabilities to span low and high values.
 */
export const sileroAudio = (): Float32Array => {
  const n = SILERO.chunk * SILERO.chunks
  const out = new Float32Array(n)
  const r = rng(7)
  let phase = 0
  for (let i = 0; i < n; i++) {
    const t = i / SILERO.rate
    const noise = (r() * 2 - 1) * 0.003
    if (t < 0.8 || t > 3.2) {
      out[i] = noise
      continue
    }
    const f0 = 110 + 110 * (0.5 + 0.5 * Math.sin(2 * Math.PI * 0.7 * t))
    phase += (2 * Math.PI * f0) / SILERO.rate
    let v = 0
    for (let h = 1; h <= 12; h++) v += Math.sin(h * phase) / h * (h === 3 || h === 6 ? 1.8 : 1)
    const env = 0.5 + 0.5 * Math.sin(2 * Math.PI * 4 * t)
    out[i] = 0.15 * env * v + noise * 4
  }
  return out
}
