// `npm start`: run the compiled server, compiling first only when the sources changed since
// the last build, and saying so. Arguments go to the server (`npm start -- --port 8080`).
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { ROOT, build, isFresh } from './build-stamp.mjs'

if (!isFresh()) {
  process.stderr.write('simple-kv: the sources changed since the last build (or nothing is built yet): building first\n')
  const status = build()
  if (status !== 0) {
    process.stderr.write('simple-kv: the build failed (see above); not starting a stale server\n')
    process.exit(status)
  }
}
await import(pathToFileURL(join(ROOT, 'dist', 'server.js')).href)
