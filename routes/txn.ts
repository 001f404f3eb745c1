import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { ref } from '../schemas/envelope.js'
import type { JsonValue } from '../schemas/record.js'
import { TxnEnvelopeSchema, TxnFailedEnvelopeSchema, TxnRequestSchema } from '../schemas/txn.js'
import type { TxnCheck, TxnOp } from '../lib/engines/types.js'
import { PreconditionRequiredError } from '../lib/errors.js'
import { withProject } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { BadRequestError, expiryOf } from './conditional.js'
import { ProjectIdParams, namedBodyValidator, operations, projectBodyParsers, response } from './schemas.js'

const op = operations('store', 'project')

/** Atomic transactions: registered under /api/v1/projects/:id/txn, behind the project key. */
const txnRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { maxTxnOps, maxTxnChecks, maxKeyBytes } = fastify.kvConfig.settings
  fastify.addHook('onRequest', fastify.requireProjectKey)
  projectBodyParsers(fastify)

  fastify.post('', {
    validatorCompiler: namedBodyValidator as never,
    schema: op('POST', 'runTransaction', 'Run a transaction', 'Checks first, against the state before; when all hold, the ops apply in order (a get sees earlier ops) as one revision, all or nothing. A transaction of get ops only is a consistent batch read.', { params: ProjectIdParams, body: ref(TxnRequestSchema) }, {
      200: response(TxnEnvelopeSchema, 'Applied.'),
      409: response(TxnFailedEnvelopeSchema, 'Some checks failed; nothing was applied.')
    }, [428, 507])
  }, async (request, reply) => {
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
    const outcome = await withProject(request, async ({ settings, store }) => {
      if (settings.security.require_conditional_writes) {
        const checked = new Set(checks.map(c => c.key))
        const unchecked = [...written].find(key => !checked.has(key))
        if (unchecked !== undefined) throw new PreconditionRequiredError(`Project '${settings.id}' requires a check on every key a transaction writes; '${unchecked}' has none`)
      }
      return await store.txn(checks, ops)
    })
    return respond(request, reply, 200, `Transaction applied to project '${request.params.id}'`, outcome)
  })
}

export default txnRoutes
