/** The one place the services reach into the fp16 / strided surface codecs. @internal */
export { readF32, readFp16, writeF32, writeFp16 } from "../../fp16/surface.js"
