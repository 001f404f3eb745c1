// What `npm run build` compiled, so `npm start` can tell a fresh build from a stale one
// without running the compiler. Plain JavaScript: it must run before anything is built.
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../', import.meta.url))
const STAMP = join(ROOT, 'dist', '.build-stamp')
/** The inputs of the build: the files and folders tsconfig.build.json includes, and the two tsconfig files. */
const SOURCES = [
  // Without an include list tsc compiles every .ts file under the folder, and so does this.
  ...(JSON.parse(readFileSync(join(ROOT, 'tsconfig.build.json'), 'utf8')).include ?? ['**/*.ts']).map(glob => glob.replace(/\/?\*\*\/\*\.ts$/, '')),
  'tsconfig.json',
  'tsconfig.build.json'
]

function collect (path, files) {
  let entries
  try {
    entries = readdirSync(path, { withFileTypes: true })
  } catch (err) {
    if (err.code === 'ENOTDIR') { files.push(path); return }
    if (err.code === 'ENOENT') return
    throw err
  }
  for (const entry of entries) {
    const child = join(path, entry.name)
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist' && !entry.name.startsWith('.')) collect(child, files)
    } else if (entry.name.endsWith('.ts')) files.push(child)
  }
}

/** A hash of every source file's path and content: a changed, added or removed file changes it. */
export function fingerprint () {
  const files = []
  for (const source of SOURCES) collect(join(ROOT, source), files)
  const hash = createHash('sha256')
  for (const file of files.sort()) hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0')
  return hash.digest('hex')
}

/** The build in dist/ was made from the sources as they are now. */
export function isFresh (print = fingerprint()) {
  try {
    return readFileSync(STAMP, 'utf8').trim() === print && existsSync(join(ROOT, 'dist', 'server.js'))
  } catch {
    return false
  }
}

/** Compile with tsc; `check: false` only emits (the caller type-checks elsewhere). Returns tsc's exit status. */
export function build ({ check = true } = {}) {
  // Hashed before compiling: an edit made while tsc runs leaves the stamp stale, not the build.
  const print = fingerprint()
  let tsc
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  } catch {
    process.stderr.write('simple-kv: cannot build: TypeScript is not installed. Run `npm ci` (with the dev dependencies) first.\n')
    return 1
  }
  const args = [tsc, '-p', join(ROOT, 'tsconfig.build.json'), ...(check ? [] : ['--noCheck'])]
  const result = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' })
  const status = result.status ?? 1
  if (status === 0) {
    mkdirSync(join(ROOT, 'dist'), { recursive: true })
    writeFileSync(STAMP, print + '\n')
  }
  return status
}
