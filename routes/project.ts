import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { EnvelopeSchema } from '../schemas/envelope.js'
import { ProjectSettingsSchema, UpdateProjectSchema } from '../schemas/project.js'
import { projectOf } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { ProjectIdParams, errorResponses, keySecurity, projectBodyParsers, registryChecksBody } from './schemas.js'

/** One project's settings: registered under /api/v1/projects/:id, every route behind the project key. */
const projectSettingsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireProjectKey)
  projectBodyParsers(fastify)

  fastify.get('', {
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
    const { id } = projectOf(request)
    return respond(request, reply, 200, `Project '${id}' details fetched successfully`, fastify.kv.projectDetails(id))
  })

  fastify.put('', {
    validatorCompiler: registryChecksBody as never,
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
    const { id } = projectOf(request)
    await fastify.kv.updateProject(id, request.body)
    return respond(request, reply, 200, `Project '${id}' updated successfully`)
  })
}

export default projectSettingsRoutes
