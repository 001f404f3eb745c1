import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** Whether the module at `moduleUrl` is the program node was started with, rather than one it imported. */
export function isMainModule (moduleUrl: string): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  const self = realpathSync(fileURLToPath(moduleUrl))
  // `node dist/server` names the file without its extension; a link (npm's .bin) names another path.
  for (const candidate of [entry, `${entry}.js`]) {
    try {
      if (realpathSync(candidate) === self) return true
    } catch {}
  }
  return false
}
