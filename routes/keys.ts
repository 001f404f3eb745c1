import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ListingEnvelopeSchema } from '../schemas/listing.js'
import { ForbiddenError } from '../lib/errors.js'
import { etagOf } from '../lib/record.js'
import { withProject } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { BadRequestError } from './conditional.js'
import { ProjectIdParams, operations, response } from './schemas.js'

const MAX_LIMIT = 1000
const DEFAULT_LIMIT = 100
/** A cursor holds a key of at most 64 KiB and little else; anything longer is not one of ours. */
const MAX_CURSOR_LENGTH = 128 * 1024

/** What a cursor carries: where the walk started (epoch, revision, prefix) and the last key it returned. */
interface Cursor {
  e: string
  r: number
  p: string
  k: string
}

function encodeCursor (cursor: Cursor): string {
  return Buffer.from(JSON.stringify(cursor)).toString('base64url')
}

function decodeCursor (text: string): Cursor | null {
  if (text.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(text)) return null
  try {
    const c = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Partial<Cursor>
    if (typeof c.e === 'string' && Number.isSafeInteger(c.r) && typeof c.p === 'string' && typeof c.k === 'string') return c as Cursor
  } catch {}
  return null
}

const ListQuery = Type.Object({
  prefix: Type.Optional(Type.String({ description: 'Only keys that start with this (compared as UTF-8 bytes).' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: `Most items in the page, 1 to ${MAX_LIMIT} (default ${DEFAULT_LIMIT}).` })),
  cursor: Type.Optional(Type.String({ description: 'next_cursor of the previous page, with the same prefix.' })),
  values: Type.Optional(Type.Boolean({ default: false, description: 'Include each record\'s value.' }))
})

const op = operations('store', 'project')

/** Ordered listing with cursors: registered under /api/v1/projects/:id/keys, behind the project key. */
const keyRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireProjectKey)

  fastify.get('', {
    // Access comes before the query is validated (contract section 0: 403 before 400).
    preValidation: async (request) => {
      await withProject(request, async ({ settings }) => {
        if (!settings.security.keys_and_values_discoverable) throw new ForbiddenError('Listing the keys of this project is disabled')
      })
    },
    schema: op('GET', 'listKeys', 'List keys in order', 'Keys in ascending order of their UTF-8 bytes, a page at a time. A key that exists during the whole walk appears exactly once. 403 unless keys_and_values_discoverable is on.', { params: ProjectIdParams, querystring: ListQuery }, {
      200: response(ListingEnvelopeSchema, 'One page.', { Link: Type.String({ description: '<…&cursor=…>; rel="next", sent while more pages follow.' }) })
    }, [403])
  }, async (request, reply) => {
    const { prefix = '', limit = DEFAULT_LIMIT, values = false } = request.query
    // The validator's coercion truncates 1.5 or 0x2 into an integer; the raw text must be digits.
    const rawLimit = new URL(request.url, 'http://localhost').searchParams.get('limit')
    if (rawLimit !== null && !/^[0-9]+$/.test(rawLimit)) throw new BadRequestError(`Invalid 'limit': expected a whole number from 1 to ${MAX_LIMIT}`)
    let after: string | undefined
    let started: { epoch: string, rev: number } | undefined
    if (request.query.cursor !== undefined) {
      const cursor = decodeCursor(request.query.cursor)
      if (cursor === null) throw new BadRequestError('Malformed cursor')
      if (cursor.p !== prefix) throw new BadRequestError('The cursor belongs to a listing with another prefix')
      after = cursor.k
      started = { epoch: cursor.e, rev: cursor.r }
    }
    const page = await withProject(request, async ({ settings, store }) => {
      if (!settings.security.keys_and_values_discoverable) throw new ForbiddenError('Listing the keys of this project is disabled')
      return await store.list({ prefix, after, limit, values })
    })
    if (started !== undefined && started.epoch !== page.revision.epoch) {
      throw new BadRequestError('The cursor belongs to an earlier history of this project (its store was replaced); start the listing again')
    }
    const rev = started?.rev ?? page.revision.rev
    const items = page.entries.map(([key, r]) => ({
      key,
      etag: etagOf(r),
      version: r.version ?? 0,
      created_at: r.created_at,
      updated_at: r.updated_at,
      size_bytes: r.size_bytes,
      type: r.type,
      expires_at: r.expires_at ?? null,
      ...(values ? { value: r.value } : {})
    }))
    let next: string | null = null
    if (page.more) {
      next = encodeCursor({ e: page.revision.epoch, r: rev, p: prefix, k: page.entries[page.entries.length - 1][0] })
      const url = new URL(request.url, 'http://localhost')
      url.searchParams.set('cursor', next)
      reply.header('link', `<${url.pathname}${url.search}>; rel="next"`)
    }
    return respond(request, reply, 200, `Keys of project '${request.params.id}'`, { items, next_cursor: next, rev })
  })
}

export default keyRoutes
