import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { OkEnvelopeSchema, ref } from '../schemas/envelope.js'
import { UpdateProjectSchema } from '../schemas/project.js'
import { ProjectSettingsEnvelopeSchema } from '../schemas/responses.js'
import { projectOf } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { ProjectIdParams, operation, projectBodyParsers, registryChecksBody, response } from './schemas.js'

/** One project's settings: registered under /api/v1/projects/:id, every route behind the project key. */
const projectSettingsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireProjectKey)
  projectBodyParsers(fastify)

  fastify.get('', {
    schema: operation({
      operationId: 'getProject',
      tag: 'projects',
      summary: 'Project details',
      description: 'The project\'s settings, without keys or hashes. Needs the project key.',
      access: 'project',
      method: 'GET'
    }, { params: ProjectIdParams }, { 200: response(ProjectSettingsEnvelopeSchema, 'The project\'s settings.') })
  }, async (request, reply) => {
    const { id } = projectOf(request)
    return respond(request, reply, 200, `Project '${id}' details fetched successfully`, fastify.kv.projectDetails(id))
  })

  fastify.put('', {
    validatorCompiler: registryChecksBody as never,
    schema: operation({
      operationId: 'updateProject',
      tag: 'projects',
      summary: 'Update project settings',
      description: 'Merges storage and security settings. Changing storage.on_disk takes effect at once. Authentication and id cannot be changed here.',
      access: 'project',
      method: 'PUT',
      errors: [507]
    }, { params: ProjectIdParams, body: ref(UpdateProjectSchema) }, { 200: response(OkEnvelopeSchema, 'Updated.') })
  }, async (request, reply) => {
    const { id } = projectOf(request)
    await fastify.kv.updateProject(id, request.body)
    return respond(request, reply, 200, `Project '${id}' updated successfully`)
  })
}

export default projectSettingsRoutes
