/**
 * Compares keys in UTF-8 byte order, which is code point order. JavaScript's
 * `<` compares UTF-16 code units, which agrees except where a surrogate
 * (half of a code point above U+FFFF) meets a unit in U+E000..U+FFFF: there
 * the surrogate's code point is the greater one.
 */
export function compareKeys (a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800 && y >= 0xd800) {
      const xs = x <= 0xdfff
      const ys = y <= 0xdfff
      if (xs !== ys) return xs ? 1 : -1
    }
    return x < y ? -1 : 1
  }
  return a.length - b.length
}
