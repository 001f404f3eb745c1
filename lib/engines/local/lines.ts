import type { FileHandle } from 'node:fs/promises'

/** Bytes read from a file per call while loading. */
const READ_BYTES = 1 << 20
const NEWLINE = 0x0a

export interface LineBlocksEnd {
  /** The bytes after the last newline: the file's last line when it has no newline, else empty. */
  rest: Buffer
  /** Bytes read, the length of the file. */
  bytes: number
}

/**
 * Read a file from its start a block of whole lines at a time, so a large file
 * is never held whole in memory: `onLines` gets the bytes of one or more
 * complete lines, each ending in a newline (a line longer than a read is
 * gathered first). `onLines` returns false to stop reading (the result is
 * then null), and so does a first line longer than `maxFirstLine` bytes.
 */
export async function readLineBlocks (handle: FileHandle, onLines: (block: Buffer) => boolean, maxFirstLine = Infinity): Promise<LineBlocksEnd | null> {
  let position = 0
  // One buffer for every read: `onLines` is done with a block before the next
  // read, and the bytes after the last newline are copied out of it.
  const chunk = Buffer.allocUnsafe(READ_BYTES)
  let pending: Buffer[] = []
  let pendingBytes = 0
  let sawLine = false
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, READ_BYTES, position)
    if (bytesRead === 0) break
    position += bytesRead
    const data = chunk.subarray(0, bytesRead)
    const last = data.lastIndexOf(NEWLINE)
    if (last === -1) {
      pending.push(Buffer.from(data))
      pendingBytes += data.length
      if (!sawLine && pendingBytes > maxFirstLine) return null
      continue
    }
    sawLine = true
    const head = data.subarray(0, last + 1)
    const block = pendingBytes === 0 ? head : Buffer.concat([...pending, head], pendingBytes + head.length)
    pending = last + 1 < data.length ? [Buffer.from(data.subarray(last + 1))] : []
    pendingBytes = pending.length === 0 ? 0 : pending[0].length
    if (!onLines(block)) return null
  }
  return { rest: pendingBytes === 0 ? Buffer.alloc(0) : Buffer.concat(pending, pendingBytes), bytes: position }
}
