import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import app, { serverOptions } from '../app.js'
import { defaultConfig } from '../lib/config.js'

/** The OpenAPI document of the running app (on a throw-away default config). */
export async function openApiDocument (): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'simple-kv-openapi-'))
  const fastify = Fastify({ ...serverOptions() })
  try {
    const config = defaultConfig()
    config.system = { ...config.system, authentication: { enabled: false } }
    config.projects = []
    await fastify.register(app, { config, baseDir: dir })
    const res = await fastify.inject({ method: 'GET', url: '/openapi.json' })
    return res.json()
  } finally {
    await fastify.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
