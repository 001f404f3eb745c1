#!/usr/bin/env node
// The `simple-kv` command: runs the compiled command line. Plain JS so it needs no TypeScript loader.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/cli/main.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('simple-kv: not built yet: run `npm run build` first\n')
  process.exit(1)
}
const { main } = await import(entry.href)
await main(process.argv.slice(2))
