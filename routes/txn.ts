import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { EnvelopeSchema } from '../schemas/envelope.js'
import { RecordSchema, type JsonValue } from '../schemas/record.js'
import type { TxnCheck, TxnOp } from '../lib/engines/types.js'
import { PreconditionRequiredError } from '../lib/errors.js'
import { projectOf } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { BadRequestError, expiryOf } from './conditional.js'
import { ProjectIdParams, errorResponses, keySecurity, projectBodyParsers } from './schemas.js'

const KeyField = Type.String({ description: 'A store key.' })

const CheckSchema = Type.Union([
  Type.Object({ key: KeyField, etag: Type.String({ description: 'Holds when the key\'s current ETag is exactly this.' }) }, { additionalProperties: false }),
  Type.Object({ key: KeyField, exists: Type.Boolean({ description: 'Holds when the key exists (true) or not (false).' }) }, { additionalProperties: false })
])

const OpSchema = Type.Union([
  Type.Object({
    op: Type.Literal('set'),
    key: KeyField,
    value: Type.Unknown({ description: 'Any JSON value.' }),
    ttl: Type.Optional(Type.Number()),
    expires_at: Type.Optional(Type.Number()),
    keep_ttl: Type.Optional(Type.Boolean())
  }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('delete'), key: KeyField }, { additionalProperties: false }),
  Type.Object({ op: Type.Literal('get'), key: KeyField }, { additionalProperties: false })
])

const TxnBody = Type.Object({
  checks: Type.Optional(Type.Array(CheckSchema, { description: 'Evaluated first, against the state before the transaction.' })),
  ops: Type.Array(OpSchema, { minItems: 1, description: 'Applied in order, as one revision, when every check holds.' })
}, { additionalProperties: false })

const ResultSchema = Type.Union([
  Type.Object({ key: Type.String(), etag: Type.String() }),
  Type.Object({ key: Type.String(), deleted: Type.Boolean() }),
  Type.Object({ key: Type.String(), etag: Type.Union([Type.String(), Type.Null()]), record: Type.Union([RecordSchema, Type.Null()]) })
])

const FailedSchema = EnvelopeSchema(Type.Object({
  failed: Type.Array(Type.Object({
    index: Type.Integer({ description: 'Position of the check in checks.' }),
    key: Type.String(),
    etag: Type.Union([Type.String(), Type.Null()], { description: 'The key\'s current ETag, or null when it does not exist.' })
  }))
}), { system: false, description: 'Some checks failed; nothing was applied.' })

/** Atomic transactions: registered under /api/v1/projects/:id/txn, behind the project key. */
const txnRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxTxnOps, maxTxnChecks, maxKeyBytes } = fastify.kvConfig.settings
  fastify.addHook('onRequest', fastify.requireProjectKey)
  projectBodyParsers(fastify)

  fastify.post('', {
    schema: {
      tags: ['store'],
      summary: 'Run a transaction',
      description: 'Checks first, against the state before; when all hold, the ops apply in order (a get sees earlier ops) as one revision, all or nothing. A transaction of get ops only is a consistent batch read.',
      security: keySecurity,
      params: ProjectIdParams,
      body: TxnBody,
      response: {
        200: EnvelopeSchema(Type.Object({
          rev: Type.Integer({ description: 'The revision the transaction made (the current one for reads only).' }),
          results: Type.Array(ResultSchema, { description: 'One per op, in order.' })
        }), { system: false, description: 'Applied.' }),
        409: FailedSchema,
        ...errorResponses([400, 401, 404, 413, 428, 500, 507])
      }
    }
  }, async (request, reply) => {
    const { settings, store } = projectOf(request)
    const checks = (request.body.checks ?? []) as TxnCheck[]
    const body = request.body.ops
    if (body.length > maxTxnOps) throw new BadRequestError(`A transaction holds at most ${maxTxnOps} ops`)
    if (checks.length > maxTxnChecks) throw new BadRequestError(`A transaction holds at most ${maxTxnChecks} checks`)
    const written = new Set<string>()
    const ops: TxnOp[] = body.map((op, i) => {
      if (Buffer.byteLength(op.key) > maxKeyBytes || op.key === '') throw new BadRequestError(`ops[${i}].key must be 1 to ${maxKeyBytes} bytes`)
      if (op.op === 'get') return op
      if (written.has(op.key)) throw new BadRequestError(`Key '${op.key}' is written twice (ops[${i}])`)
      written.add(op.key)
      if (op.op === 'delete') return op
      if (op.value === undefined) throw new BadRequestError(`ops[${i}].value is required`)
      try {
        return { op: 'set', key: op.key, value: op.value as JsonValue, expiry: expiryOf(op) }
      } catch (err) {
        throw new BadRequestError(`ops[${i}]: ${(err as Error).message}`)
      }
    })
    if (settings.security.require_conditional_writes) {
      const checked = new Set(checks.map(c => c.key))
      const unchecked = [...written].find(key => !checked.has(key))
      if (unchecked !== undefined) throw new PreconditionRequiredError(`Project '${settings.id}' requires a check on every key a transaction writes; '${unchecked}' has none`)
    }
    const outcome = await store.txn(checks, ops)
    return respond(request, reply, 200, `Transaction applied to project '${settings.id}'`, outcome)
  })
}

export default txnRoutes
