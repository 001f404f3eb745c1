import { copyFileSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Fastify from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import t, { type Test } from 'tap'
import app, { serverOptions } from '../../app.js'
import { VERSION } from '../../lib/version.js'
import type { KvConfig } from '../../lib/config.js'
import { testConfig, writeConfig } from '../support/app.js'
import { ServerProcess } from '../support/process.js'
import { ROOT } from '../support/root.js'
import { tempDir } from '../support/temp.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const OUTPUT = join(process.env.TEST_OUTPUT_DIR ?? join(ROOT, 'test-output'), 'browser')
/** Set UPDATE_DOCS_IMG=1 to refresh the screenshot the README shows (docs/img/swagger-ui.png). */
const DOCS_IMG = join(ROOT, 'docs', 'img', 'swagger-ui.png')

const TAGS = ['status', 'projects', 'store']
/** GET /health, the contract's 13 API routes (R1 to R13), 1.1's TTL, listing and transaction routes, and HEAD for every GET. */
const GETS = [
  'GET /health',
  'GET /status',
  'GET /api/v1/projects',
  'GET /api/v1/projects/{id}',
  'GET /api/v1/projects/{id}/store',
  'GET /api/v1/projects/{id}/store/{key}',
  'GET /api/v1/projects/{id}/store/{key}/value',
  'GET /api/v1/projects/{id}/keys'
]
const OPERATIONS = [
  ...GETS.map(o => o.replace('GET', 'HEAD')),
  'GET /health',
  'GET /status',
  'GET /api/v1/projects',
  'POST /api/v1/projects',
  'POST /api/v1/projects/{id}/config/regenerate-api-key',
  'DELETE /api/v1/projects/{id}',
  'GET /api/v1/projects/{id}',
  'PUT /api/v1/projects/{id}',
  'GET /api/v1/projects/{id}/store',
  'PUT /api/v1/projects/{id}/store/{key}',
  'GET /api/v1/projects/{id}/store/{key}',
  'GET /api/v1/projects/{id}/store/{key}/value',
  'DELETE /api/v1/projects/{id}/store/{key}',
  'DELETE /api/v1/projects/{id}/store',
  'GET /api/v1/projects/{id}/keys',
  'PUT /api/v1/projects/{id}/store/{key}/ttl',
  'POST /api/v1/projects/{id}/txn'
]

/** The test config plus a project without authentication, so "Try it out" needs no key. */
function docsConfig (more: (c: KvConfig) => void = () => {}): KvConfig {
  return testConfig(c => {
    c.projects!.push({ id: 'open', authentication: { enabled: false }, security: { keys_and_values_discoverable: true }, storage: { on_disk: false } })
    more(c)
  })
}

async function launch (t: Test): Promise<Browser | null> {
  if (!existsSync(CHROMIUM)) {
    t.fail(`Chromium is not installed at ${CHROMIUM}: the Swagger UI test needs it (apt-get install chromium), or set CHROMIUM_PATH`)
    return null
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking']
  })
  t.teardown(async () => { await browser.close() })
  return browser
}

/**
 * Open Swagger UI at `docsUrl`, check that every tag group and every operation
 * render, run "Try it out" on GET /health and on the ordered listing of the
 * project `open`, and save screenshots.
 */
async function checkDocs (t: Test, browser: Browser, docsUrl: string, prefix: string, shot: string): Promise<void> {
  const page: Page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  page.setDefaultTimeout(30_000)
  const problems: string[] = []
  page.on('pageerror', err => { problems.push(`page error: ${err.message}`) })
  page.on('console', msg => { if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`) })
  page.on('response', res => { if (res.status() >= 400) problems.push(`${res.status()} for ${res.url()}`) })

  const res = await page.goto(docsUrl)
  t.equal(res?.status(), 200, `${docsUrl} loads`)
  await page.waitForSelector('.opblock-tag-section')
  await page.locator('.opblock').nth(OPERATIONS.length - 1).waitFor()

  t.equal((await page.locator('.info .title').innerText()).replace(/\s+/g, ' '), `Simple KV ${VERSION} OAS 3.1`, 'the title and versions')
  t.same(await page.$$eval('.opblock-tag', els => els.map(e => e.getAttribute('data-tag'))), TAGS, 'every tag group, in order')
  const rendered = await page.$$eval('.opblock', els => els.map(e => {
    const method = e.querySelector('.opblock-summary-method')?.textContent ?? ''
    const path = e.querySelector('.opblock-summary-path')?.getAttribute('data-path') ?? ''
    return `${method} ${path}`
  }))
  // Paths are relative to the document's server, which is the prefix when embedded.
  t.equal(await page.locator('.servers select').inputValue(), prefix === '' ? '/' : prefix, 'the server Try it out calls')
  t.same(rendered.slice().sort(), OPERATIONS.slice().sort(), `all ${OPERATIONS.length} operations`)

  mkdirSync(OUTPUT, { recursive: true })
  await page.screenshot({ path: join(OUTPUT, shot), fullPage: true })

  const health = page.locator('.opblock-get').filter({ has: page.locator('.opblock-summary-path[data-path="/health"]') })
  await health.locator('.opblock-summary').click()
  await health.getByRole('button', { name: 'Try it out' }).click()
  await health.getByRole('button', { name: 'Execute' }).click()
  const live = health.locator('.live-responses-table tbody tr.response')
  await live.waitFor()
  t.equal((await live.locator('.response-col_status').innerText()).trim(), '200', 'Try it out on GET /health answers 200')
  t.match(await live.locator('.response-col_description').innerText(), '"message": "OK"', 'with the envelope')
  await page.screenshot({ path: join(OUTPUT, shot.replace('.png', '-try-it-out.png')), fullPage: true })

  // The listing, tried out from the page: three keys, a page of two, so the answer has a cursor and a Link header.
  const api = docsUrl.replace(/\/docs$/, '')
  for (const key of ['b', 'a', 'c']) {
    const put = await fetch(`${api}/api/v1/projects/open/store/${key}`, { method: 'PUT', body: `value ${key}` })
    t.equal(put.status, 200, `PUT ${key} for the listing`)
  }
  // Paths are relative to the document's server (the prefix when embedded); the GET, not its HEAD twin.
  const listing = page.locator('.opblock-get').filter({ has: page.locator('.opblock-summary-path[data-path="/api/v1/projects/{id}/keys"]') })
  await listing.locator('.opblock-summary').click()
  await listing.getByRole('button', { name: 'Try it out' }).click()
  await listing.locator('tr[data-param-name="id"] input').fill('open')
  await listing.locator('tr[data-param-name="limit"] input').fill('2')
  await listing.getByRole('button', { name: 'Execute' }).click()
  const page1 = listing.locator('.live-responses-table tbody tr.response')
  await page1.waitFor()
  t.equal((await page1.locator('.response-col_status').innerText()).trim(), '200', 'Try it out on GET /keys answers 200')
  const shown = await page1.locator('.response-col_description').innerText()
  t.match(shown, /"key": "a"[\s\S]*"key": "b"/, 'the first two keys, in order')
  t.notMatch(shown, /"key": "c"/, 'and not the third')
  t.match(shown, /"next_cursor": "[A-Za-z0-9_-]+"/, 'with a cursor for the next page')
  t.match(shown, /link: <[^>]*cursor=[^>]*>; rel="next"/, 'and the Link header')
  await page.screenshot({ path: join(OUTPUT, shot.replace('.png', '-try-it-out-listing.png')), fullPage: true })

  t.same(problems, [], 'no errors, failed assets or blocked scripts in the page')
  await page.close()
}

t.test('Swagger UI of the standalone server', async t => {
  const browser = await launch(t)
  if (browser === null) return
  const dir = tempDir(t)
  const file = writeConfig(dir, docsConfig(c => { c.server_port = 0 }))
  const server = await ServerProcess.start(t, ['--config', file])
  await checkDocs(t, browser, `${server.url}/docs`, '', 'swagger-ui.png')
  if (process.env.UPDATE_DOCS_IMG === '1') {
    mkdirSync(join(ROOT, 'docs', 'img'), { recursive: true })
    copyFileSync(join(OUTPUT, 'swagger-ui.png'), DOCS_IMG)
  }
  t.equal((await server.stop()).code, 0)
})

t.test('Swagger UI of the app embedded under /kv in a host app', async t => {
  const browser = await launch(t)
  if (browser === null) return
  const dir = tempDir(t)
  const host = Fastify({ ...serverOptions() })
  t.teardown(async () => { await host.close() })
  host.get('/', async () => ({ host: true }))
  await host.register(app, { prefix: '/kv', configPath: writeConfig(dir, docsConfig()), onGeneratedKeys: () => {} })
  const url = await host.listen({ host: '127.0.0.1', port: 0 })
  await checkDocs(t, browser, `${url}/kv/docs`, '/kv', 'swagger-ui-embedded.png')
})
