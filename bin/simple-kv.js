#!/usr/bin/env node
// The `simple-kv` command: runs the compiled server. Plain JS so it needs no TypeScript loader.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const entry = new URL('../dist/server.js', import.meta.url)
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('simple-kv: not built yet: run `npm run build` first\n')
  process.exit(1)
}
await import(entry.href)
