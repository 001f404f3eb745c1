import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { KvError } from '../lib/errors.js'
import { exceedsJsonDepth, jsonDepthMessage } from '../lib/json-depth.js'
import { BODY_NOT_JSON, CreateProjectSchema, UpdateProjectSchema } from '../lib/registry.js'
import { respond } from '../plugins/envelope.js'
import { EnvelopeSchema, NewKeySchema, ProjectIdParams, ProjectSettingsSchema, errorResponses, keySecurity } from './schemas.js'

const projectRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  // Project bodies must be JSON objects; anything else gets the contract's one message.
  fastify.removeAllContentTypeParsers()
  const { maxJsonDepth } = fastify.kvConfig.settings
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (exceedsJsonDepth(body as string, maxJsonDepth)) {
      done(new KvError(400, jsonDepthMessage(maxJsonDepth)), undefined)
      return
    }
    try {
      done(null, JSON.parse(body as string))
    } catch {
      done(new KvError(400, BODY_NOT_JSON), undefined)
    }
  })
  fastify.addContentTypeParser('*', { parseAs: 'string' }, (_request, _body, done) => {
    done(new KvError(400, BODY_NOT_JSON), undefined)
  })

  fastify.get('/api/v1/projects', {
    onRequest: fastify.requireSystemKey,
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
    if (!fastify.kv.projectDiscoverable) throw new KvError(403, 'Project listing is disabled')
    return respond(request, reply, 200, 'Project listing fetched successfully', fastify.kv.listProjects())
  })

  fastify.post('/api/v1/projects', {
    onRequest: fastify.requireSystemKey,
    // The contract orders the checks (id, then duplicate, then fields), so the
    // registry validates against the same schema in that order.
    attachValidation: true,
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

  fastify.post('/api/v1/projects/:id/config/regenerate-api-key', {
    onRequest: fastify.requireSystemKey,
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

  fastify.delete('/api/v1/projects/:id', {
    onRequest: fastify.requireSystemKey,
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

  fastify.get('/api/v1/projects/:id', {
    onRequest: fastify.requireProjectKey,
    schema: {
      tags: ['projects'],
      summary: 'Project details',
      description: 'The project\'s settings, without keys or hashes. Needs the project key.',
      security: keySecurity,
      params: ProjectIdParams,
      response: {
        200: EnvelopeSchema(ProjectSettingsSchema, { system: false, description: 'The project\'s settings.' }),
        ...errorResponses([401, 404, 500])
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    return respond(request, reply, 200, `Project '${id}' details fetched successfully`, fastify.kv.projectDetails(id))
  })

  fastify.put('/api/v1/projects/:id', {
    onRequest: fastify.requireProjectKey,
    // The authentication and id checks come before field validation (contract R7).
    attachValidation: true,
    schema: {
      tags: ['projects'],
      summary: 'Update project settings',
      description: 'Merges storage and security settings. Changing storage.on_disk takes effect at once. Authentication and id cannot be changed here.',
      security: keySecurity,
      params: ProjectIdParams,
      body: UpdateProjectSchema,
      response: {
        200: EnvelopeSchema(Type.Null(), { system: false, description: 'Updated.' }),
        ...errorResponses([400, 401, 404, 413, 500, 507])
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    await fastify.kv.updateProject(id, request.body)
    return respond(request, reply, 200, `Project '${id}' updated successfully`)
  })
}

export default projectRoutes
