/** Reading model files safely: regular files only, checked on the open descriptor, with a cap on what is read. */
import * as fs from "node:fs"

const errorText = (cause: unknown): string => {
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
  return code === "ENOENT" ? "it does not exist"
    : code === "EACCES" || code === "EPERM" ? "permission denied"
    : code === "EISDIR" ? "it is a directory"
    : cause instanceof Error ? cause.message : String(cause)
}

const kindOf = (st: fs.Stats): string =>
  st.isDirectory() ? "a directory" : st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket"
    : st.isCharacterDevice() || st.isBlockDevice() ? "a device" : "a special file"

/**
 * Reads `length` bytes at `offset` of a regular file (the whole file when `length` is undefined), or returns why it
 * cannot. The file is opened non-blocking and checked on its descriptor, so a FIFO or device (even one swapped in
 * after a check) is refused without waiting for a writer, and nothing past `maxBytes` is allocated.
 */
export const readRegularFileSync = (
  file: string,
  maxBytes: number,
  range: { readonly offset: number; readonly length: number | undefined } = { offset: 0, length: undefined }
): Uint8Array | string => {
  let fd: number
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
  } catch (cause) {
    return errorText(cause)
  }
  try {
    const st = fs.fstatSync(fd)
    if (!st.isFile()) return `it is ${kindOf(st)}, not a regular file`
    const length = range.length ?? st.size - range.offset
    if (range.offset > st.size || length < 0 || range.offset + length > st.size) {
      return `the range ${range.offset}+${length} lies outside the file (${st.size} bytes)`
    }
    if (length > maxBytes) return `${length} bytes exceed the limit of ${maxBytes} bytes read at once`
    const out = new Uint8Array(length)
    let at = 0
    while (at < length) {
      const n = fs.readSync(fd, out, at, length - at, range.offset + at)
      if (n === 0) return `the file ended after ${at} of ${length} bytes (it shrank while being read)`
      at += n
    }
    return out
  } catch (cause) {
    return errorText(cause)
  } finally {
    fs.closeSync(fd)
  }
}
