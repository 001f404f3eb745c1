const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d

/**
 * Whether the JSON text nests arrays and objects more than `maxDepth` levels
 * deep (`[]` is one level). Reads the text once, without parsing it and without
 * recursion, so a hostile body cannot overflow the stack here; values that
 * pass are safe for the recursive JSON.stringify that storing them needs.
 * Brackets inside strings do not count. Text that is not JSON gives an
 * arbitrary answer: the parser rejects it anyway.
 */
export function exceedsJsonDepth (text: string, maxDepth: number): boolean {
  // Each level takes at least one character.
  if (text.length <= maxDepth) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return true
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
      depth--
    }
  }
  return false
}

/** The message a body rejected by exceedsJsonDepth gets. */
export function jsonDepthMessage (maxDepth: number): string {
  return `Request body nests arrays and objects more than ${maxDepth} levels deep (limit: system.limits.max_json_depth)`
}
