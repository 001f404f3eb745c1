import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { openApiDocument } from '../scripts/openapi-document.js'
import { ROOT } from './support/root.js'
import { tempDir } from './support/temp.js'

const run = promisify(execFile)

t.test('redocly lint (recommended rules, exceptions in redocly.yaml) finds no error and no warning in the generated document', async t => {
  const file = join(tempDir(t), 'openapi.json')
  writeFileSync(file, JSON.stringify(await openApiDocument()))
  const { stdout } = await run(join(ROOT, 'node_modules', '.bin', 'redocly'), ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json'], {
    cwd: ROOT,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    timeout: 120_000
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
  const report = JSON.parse(stdout) as { totals: { errors: number, warnings: number }, problems: Array<{ ruleId: string, message: string }> }
  t.same(report.problems.map(p => `${p.ruleId}: ${p.message}`), [], 'no problem reported')
  t.equal(report.totals.errors, 0)
  t.equal(report.totals.warnings, 0)
})
