import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { EnvelopeSchema } from '../schemas/envelope.js'
import { CreateProjectSchema, NewKeySchema, ProjectSettingsSchema } from '../schemas/project.js'
import { ForbiddenError } from '../lib/errors.js'
import { respond } from '../plugins/envelope.js'
import { ProjectIdParams, errorResponses, keySecurity, projectBodyParsers, registryChecksBody } from './schemas.js'

/** Managing projects: registered under /api/v1/projects, every route behind the system key. */
const projectRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireSystemKey)
  projectBodyParsers(fastify)

  fastify.get('', {
    schema: {
      tags: ['projects'],
      summary: 'List projects',
      description: 'Every project\'s settings keyed by id, without keys or hashes. 403 when project_discoverable is off.',
      security: keySecurity,
      response: {
        200: EnvelopeSchema(Type.Record(Type.String(), ProjectSettingsSchema), { system: true, description: 'Projects keyed by id.' }),
        ...errorResponses([401, 403, 500], true)
      }
    }
  }, async (request, reply) => {
    if (!fastify.kv.projectDiscoverable) throw new ForbiddenError('Project listing is disabled')
    return respond(request, reply, 200, 'Project listing fetched successfully', fastify.kv.listProjects())
  })

  fastify.post('', {
    validatorCompiler: registryChecksBody as never,
    schema: {
      tags: ['projects'],
      summary: 'Create a project',
      description: 'Creates a project with its own key (returned once) and store. Omitted settings take the defaults.',
      security: keySecurity,
      body: CreateProjectSchema,
      response: {
        201: EnvelopeSchema(Type.Union([NewKeySchema, Type.Null()]), { system: true, description: 'Created; data holds the new key when authentication is on.' }),
        ...errorResponses([400, 401, 413, 500, 507], true)
      }
    }
  }, async (request, reply) => {
    const key = await fastify.kv.createProject(request.body)
    return key === null
      ? respond(request, reply, 201, 'Project created successfully. No API key generated (authentication for this project may be disabled).')
      : respond(request, reply, 201, 'Project created successfully. Store the returned API key securely as it may not be shown again.', { new_api_key: key })
  })

  fastify.post('/:id/config/regenerate-api-key', {
    schema: {
      tags: ['projects'],
      summary: 'Regenerate a project key',
      description: 'Issues a new project key; the old one stops working at once.',
      security: keySecurity,
      params: ProjectIdParams,
      response: {
        200: EnvelopeSchema(NewKeySchema, { system: true, description: 'The new key, shown only here.' }),
        ...errorResponses([401, 404, 409, 500, 507], true)
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const key = await fastify.kv.regenerateKey(id)
    return respond(request, reply, 200, `API key regenerated successfully for project '${id}'`, { new_api_key: key })
  })

  fastify.delete('/:id', {
    schema: {
      tags: ['projects'],
      summary: 'Delete a project',
      description: 'Removes the project, its settings and its files.',
      security: keySecurity,
      params: ProjectIdParams,
      response: {
        200: EnvelopeSchema(Type.Null(), { system: true, description: 'Deleted.' }),
        ...errorResponses([401, 404, 500, 507], true)
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    await fastify.kv.deleteProject(id)
    return respond(request, reply, 200, `Project '${id}' deleted successfully`)
  })
}

export default projectRoutes
