import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './root.js'

/** Newest modification time of the server's sources. */
function newestSource (): number {
  let newest = 0
  const visit = (path: string): void => {
    const info = statSync(path)
    if (info.isDirectory()) {
      for (const name of readdirSync(path)) visit(join(path, name))
    } else if (path.endsWith('.ts')) {
      newest = Math.max(newest, info.mtimeMs)
    }
  }
  for (const entry of ['app.ts', 'server.ts', 'cli', 'lib', 'plugins', 'routes']) visit(join(ROOT, entry))
  return newest
}

let cached: string | undefined

/**
 * The compiled standalone server for tests that spawn real processes: dist/
 * when it is newer than every source (as `npm test` leaves it, through
 * pretest), else a build of this process's own. Starting compiled JavaScript
 * takes a fraction of running the sources through a TypeScript loader.
 */
export function compiledServer (): string {
  if (cached !== undefined) return cached
  const newest = newestSource()
  const dist = join(ROOT, 'dist', 'server.js')
  if (existsSync(dist) && statSync(dist).mtimeMs >= newest) {
    cached = dist
    return dist
  }
  const cache = join(ROOT, 'node_modules', '.cache', 'simple-kv-test', `build-${process.pid}`)
  mkdirSync(cache, { recursive: true })
  const tsconfig = join(cache, 'tsconfig.json')
  writeFileSync(tsconfig, JSON.stringify({
    extends: join(ROOT, 'tsconfig.json'),
    files: [join(ROOT, 'server.ts')],
    include: [],
    compilerOptions: { outDir: join(cache, 'build'), rootDir: ROOT, declaration: false, sourceMap: false }
  }))
  const server = join(cache, 'build', 'server.js')
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig], { stdio: 'pipe' })
  } catch (err) {
    // Type errors elsewhere still emit JavaScript; only a missing output is fatal.
    if (!existsSync(server)) throw err
  }
  cached = server
  return server
}
