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
// The command line's entry, called directly: imported, dist/server.js would not run (it runs only as the program itself).
const cli = await import(pathToFileURL(join(ROOT, 'dist', 'cli', 'main.js')).href)
await cli.main(process.argv.slice(2))
