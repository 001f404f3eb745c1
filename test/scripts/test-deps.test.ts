import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ROOT } from '../support/root.js'
import { tempDir } from '../support/temp.js'

/*
 * scripts/test-deps.sh, the first step of `npm test`, run against a PATH of
 * fakes: nothing on this machine is uninstalled or installed.
 */

const SCRIPT = join(ROOT, 'scripts', 'test-deps.sh')
const INSTALL = 'install -y --no-install-recommends chromium fonts-dejavu-core redis-server redis-tools'
const ADVICE = 'sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core redis-server redis-tools'

function executable (path: string, body = 'exit 0'): void {
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
}

interface Fakes { bin: string, chromium: string, log: string }

/** An empty bin folder (the whole PATH) and where Chromium is looked for. */
function fakes (t: Test): Fakes {
  const dir = tempDir(t)
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  return { bin, chromium: join(dir, 'chromium'), log: join(dir, 'apt.log') }
}

/** A fake apt-get that logs its arguments and, when `provides`, "installs" the fakes on install. */
function fakeAptGet (f: Fakes, provides: boolean): void {
  const install = provides
    ? `for f in "${f.bin}/redis-server" "${f.bin}/redis-cli" "${f.chromium}"; do printf '#!/bin/sh\\n' > "$f"; /bin/chmod 755 "$f"; done`
    : ':'
  executable(join(f.bin, 'apt-get'), `printf '%s|%s\\n' "$DEBIAN_FRONTEND" "$*" >> "${f.log}"\ncase "$1" in install) ${install} ;; esac\nexit 0`)
}

function run (f: Fakes): { status: number | null, stderr: string, apt: string[] } {
  const result = spawnSync('/bin/bash', [SCRIPT], { env: { PATH: f.bin, CHROMIUM_PATH: f.chromium }, encoding: 'utf8', timeout: 30_000 })
  const apt = existsSync(f.log) ? readFileSync(f.log, 'utf8').trim().split('\n') : []
  return { status: result.status, stderr: result.stderr, apt }
}

const root = process.getuid?.() === 0

t.test('everything present: succeeds, installs nothing', async t => {
  const f = fakes(t)
  executable(join(f.bin, 'redis-server'))
  executable(join(f.bin, 'redis-cli'))
  executable(f.chromium)
  fakeAptGet(f, true)
  const r = run(f)
  t.equal(r.status, 0)
  t.equal(r.stderr, '')
  t.same(r.apt, [], 'apt-get not called')
})

t.test('missing and no apt-get: names what is missing, prints the install command, fails', async t => {
  const f = fakes(t)
  executable(join(f.bin, 'redis-cli'))
  const r = run(f)
  t.equal(r.status, 1, 'fails rather than let the tests skip')
  t.match(r.stderr, `chromium (expected at ${f.chromium})`)
  t.match(r.stderr, 'redis-server (on PATH)')
  t.notMatch(r.stderr, 'redis-cli (on PATH)', 'what is there is not listed')
  t.match(r.stderr, ADVICE, 'the exact command to run')
})

t.test('missing with apt-get: installs them as root (update once, then one install), else says what to install', async t => {
  const f = fakes(t)
  fakeAptGet(f, true)
  const r = run(f)
  if (root) {
    t.equal(r.status, 0, 'installed, then found')
    t.same(r.apt, ['noninteractive|update', `noninteractive|${INSTALL}`])
    t.ok(existsSync(join(f.bin, 'redis-server')) && existsSync(f.chromium))
  } else {
    t.equal(r.status, 1, 'not root: cannot install')
    t.same(r.apt, [], 'apt-get not tried')
    t.match(r.stderr, ADVICE)
  }
})

t.test('an install that does not provide them: fails naming what is still missing', async t => {
  const f = fakes(t)
  fakeAptGet(f, false)
  const r = run(f)
  t.equal(r.status, 1)
  t.match(r.stderr, ADVICE)
  if (root) t.match(r.stderr, /still missing after the install:\n {2}chromium/)
})

t.test('npm test runs it first', async t => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  t.match(pkg.scripts.pretest, /^bash scripts\/test-deps\.sh && /)
})
