// `npm run build`: compile to dist/ and stamp it. --if-changed skips an up-to-date build;
// --no-check only emits JavaScript (for the test command, which type-checks everything first).
import { build, isFresh } from './build-stamp.mjs'

const args = new Set(process.argv.slice(2))
if (args.has('--if-changed') && isFresh()) process.exit(0)
process.exit(build({ check: !args.has('--no-check') }))
