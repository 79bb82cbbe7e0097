// Writes onnxruntime goldens (.npy) for the ONNX import tests: Silero VAD over a 4 s stream of 512-sample chunks
// (64 samples of context, LSTM state carried), and each generated graph of scripts/onnx-fixtures.mjs.
// onnxruntime-node is never a dependency: install it outside the project (or with --no-save --ignore-scripts) and
// point ONNXRUNTIME_NODE at it, e.g.
//   (cd /tmp/ort && npm install --no-save --ignore-scripts onnxruntime-node)
//   ONNXRUNTIME_NODE=/tmp/ort/node_modules/onnxruntime-node node --import tsx scripts/onnx-goldens.mjs
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { readNpy, writeNpy } from "../test/onnx/npy.ts"
import { sileroAudio, SILERO } from "../test/onnx/silero-stream.ts"

const require = createRequire(import.meta.url)
let ort
try {
  ort = require(process.env.ONNXRUNTIME_NODE ?? "onnxruntime-node")
} catch {
  console.error("onnxruntime-node is not installed; see the header of this script")
  process.exit(1)
}
const dir = path.resolve(import.meta.dirname, "../test/onnx/fixtures")
const f32 = (t) => new Float32Array(t.data)

// Silero VAD v6: probabilities of every chunk and the final state.
{
  const session = await ort.InferenceSession.create(path.join(dir, "silero_vad_v6.onnx"))
  const audio = sileroAudio()
  let state = new Float32Array(2 * 128)
  const probs = new Float32Array(SILERO.chunks)
  const frame = new Float32Array(SILERO.context + SILERO.chunk)
  for (let i = 0; i < SILERO.chunks; i++) {
    frame.copyWithin(0, SILERO.chunk)
    frame.set(audio.subarray(i * SILERO.chunk, (i + 1) * SILERO.chunk), SILERO.context)
    const out = await session.run({
      input: new ort.Tensor("float32", frame.slice(), [1, frame.length]),
      state: new ort.Tensor("float32", state, [2, 1, 128]),
      sr: new ort.Tensor("int64", BigInt64Array.from([16000n]), [])
    })
    probs[i] = f32(out.output)[0]
    state = f32(out.stateN)
  }
  fs.writeFileSync(path.join(dir, "silero_vad_v6.probs.npy"), writeNpy([SILERO.chunks], probs))
  fs.writeFileSync(path.join(dir, "silero_vad_v6.state.npy"), writeNpy([2, 1, 128], state))
  console.log(`silero: ${SILERO.chunks} chunks, probabilities ${Math.min(...probs).toFixed(3)}…${Math.max(...probs).toFixed(3)}`)
}

for (const [name, input, output] of [["convnet", "image", "probs"], ["encoder", "tokens", "encoded"], ["resize", "features", "upsampled"]]) {
  const session = await ort.InferenceSession.create(path.join(dir, `${name}.onnx`))
  const x = readNpy(fs.readFileSync(path.join(dir, `${name}.input.npy`)))
  const out = await session.run({ [input]: new ort.Tensor("float32", x.data, [...x.shape]) })
  const y = out[output]
  fs.writeFileSync(path.join(dir, `${name}.golden.npy`), writeNpy([...y.dims], f32(y)))
  console.log(`${name}: output [${y.dims.join(", ")}]`)
}
