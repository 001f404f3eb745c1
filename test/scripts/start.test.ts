import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { freePort } from '../support/net.js'
import { ROOT } from '../support/root.js'
import { tempDir } from '../support/temp.js'

/*
 * npm start runs the compiled server and compiles only when the sources
 * changed since the last build, saying so; a failed build never falls back
 * to the stale one.
 */

const REBUILD = 'simple-kv: the sources changed since the last build (or nothing is built yet): building first'

/** A project of a few sources with the real build and start scripts, and a stand-in for tsc that writes dist/server.js. */
function project (t: Test, opts: { compiler: boolean }): string {
  const dir = tempDir(t)
  mkdirSync(join(dir, 'scripts'))
  for (const name of ['build-stamp.mjs', 'build.mjs', 'start.mjs']) copyFileSync(join(ROOT, 'scripts', name), join(dir, 'scripts', name))
  mkdirSync(join(dir, 'lib'))
  writeFileSync(join(dir, 'app.ts'), 'export const a = 1\n')
  writeFileSync(join(dir, 'lib', 'x.ts'), 'export const x = 1\n')
  writeFileSync(join(dir, 'tsconfig.json'), '{}\n')
  writeFileSync(join(dir, 'tsconfig.build.json'), '{}\n')
  if (opts.compiler) {
    mkdirSync(join(dir, 'node_modules', 'typescript', 'bin'), { recursive: true })
    // Each "build" writes a command line that reports the build it came from and its arguments.
    writeFileSync(join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), [
      "const { mkdirSync, readFileSync, writeFileSync } = require('node:fs')",
      "const { join } = require('node:path')",
      "const dist = join(process.cwd(), 'dist')",
      'mkdirSync(dist, { recursive: true })',
      "const source = readFileSync(join(process.cwd(), 'lib', 'x.ts'), 'utf8').trim()",
      "writeFileSync(join(dist, 'server.js'), '')",
      "mkdirSync(join(dist, 'cli'), { recursive: true })",
      // eslint-disable-next-line no-template-curly-in-string -- this is the source of a script, with its own template string
      "writeFileSync(join(dist, 'cli', 'main.js'), `exports.main = async args => { process.stdout.write(${JSON.stringify(source)} + ' ' + args.join(' ') + '\\\\n') }\\n`)",
      "if (source.includes('type error')) process.exit(2)"
    ].join('\n'))
  }
  return dir
}

function start (dir: string, ...args: string[]): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [join(dir, 'scripts', 'start.mjs'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

t.test('builds when nothing is built, then starts the build without compiling, passing the arguments on', async t => {
  const dir = project(t, { compiler: true })
  const first = start(dir, '--port', '1')
  t.equal(first.status, 0)
  t.match(first.stderr, REBUILD)
  t.equal(first.stdout, 'export const x = 1 --port 1\n', 'the new build ran with the arguments')
  const second = start(dir)
  t.equal(second.status, 0)
  t.equal(second.stderr, '', 'up to date: no build, no message')
  t.equal(second.stdout, 'export const x = 1 \n')
})

t.test('a changed, added or removed source makes it build again', async t => {
  const dir = project(t, { compiler: true })
  start(dir)
  writeFileSync(join(dir, 'lib', 'x.ts'), 'export const x = 2\n')
  const changed = start(dir)
  t.match(changed.stderr, REBUILD)
  t.equal(changed.stdout, 'export const x = 2 \n', 'the changed source is what runs')
  writeFileSync(join(dir, 'lib', 'y.ts'), 'export const y = 1\n')
  t.match(start(dir).stderr, REBUILD, 'an added file')
  rmSync(join(dir, 'lib', 'y.ts'))
  t.match(start(dir).stderr, REBUILD, 'a removed file')
  writeFileSync(join(dir, 'tsconfig.build.json'), '{ "compilerOptions": {} }\n')
  t.match(start(dir).stderr, REBUILD, 'a changed tsconfig')
  t.equal(start(dir).stderr, '', 'and then it is up to date')
  writeFileSync(join(dir, 'lib', 'notes.md'), 'not a source\n')
  t.equal(start(dir).stderr, '', 'files that are not sources do not count')
})

t.test('a failed build never starts the stale server', async t => {
  const dir = project(t, { compiler: true })
  start(dir)
  writeFileSync(join(dir, 'lib', 'x.ts'), 'export const x: number = "type error"\n')
  const failed = start(dir)
  t.equal(failed.status, 2)
  t.match(failed.stderr, 'simple-kv: the build failed (see above); not starting a stale server')
  t.equal(failed.stdout, '')
  t.match(start(dir).stderr, REBUILD, 'and it tries again next time')
})

t.test('without TypeScript installed: says so, starts nothing', async t => {
  const dir = project(t, { compiler: false })
  const r = start(dir)
  t.equal(r.status, 1)
  t.match(r.stderr, 'simple-kv: cannot build: TypeScript is not installed')
  t.equal(r.stdout, '')
})

async function health (port: number): Promise<number> {
  return await new Promise<number>(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/health' }, res => { res.resume(); resolve(res.statusCode ?? 0) })
    req.on('error', () => { resolve(0) })
    req.end()
  })
}

/** Start `command` in this repository on a fresh config, wait for /health, SIGTERM the started process. */
async function startAndStop (t: Test, command: string, args: string[]): Promise<{ code: number | null, stderr: string, port: number }> {
  const dir = tempDir(t)
  const port = await freePort()
  const config = join(dir, 'config.json')
  writeFileSync(config, JSON.stringify({ server_port: port, server_host: '127.0.0.1', system: { authentication: { enabled: false } }, projects: [] }))
  const child = spawn(command, [...args, '--config', config], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const exited = new Promise<number | null>(resolve => { child.on('exit', code => { resolve(code) }) })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let status = 0
  while (status !== 200 && child.exitCode === null) {
    status = await health(port)
    if (status !== 200) await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.equal(status, 200, `${command}: answers /health`)
  child.kill('SIGTERM')
  return { code: await exited, stderr, port }
}

t.test('in this repository, after the test command built it: the start script serves /health without compiling', async t => {
  const { code, stderr } = await startAndStop(t, process.execPath, [join(ROOT, 'scripts', 'start.mjs')])
  t.notMatch(stderr, 'building first', 'ran the existing build')
  t.equal(code, 0, 'and stops cleanly on SIGTERM')
  t.match(readFileSync(join(ROOT, 'dist', '.build-stamp'), 'utf8'), /^[0-9a-f]{64}\n$/)
})

t.test('SIGTERM to npm start reaches the server: a clean stop, no server left behind', async t => {
  const { code, port } = await startAndStop(t, 'npm', ['start', '--silent', '--'])
  t.equal(code, 0, 'npm exits 0 after the server stopped cleanly')
  t.equal(await health(port), 0, 'nothing answers on the port any more')
})
