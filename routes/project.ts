import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { OkEnvelopeSchema, ref } from '../schemas/envelope.js'
import { UpdateProjectSchema } from '../schemas/project.js'
import { ProjectSettingsEnvelopeSchema } from '../schemas/responses.js'
import { withProject } from '../plugins/auth.js'
import { respond } from '../plugins/envelope.js'
import { ProjectIdParams, operations, projectBodyParsers, registryChecksBody, response } from './schemas.js'

const op = operations('projects', 'project')

/** One project's settings: registered under /api/v1/projects/:id, every route behind the project key. */
const projectSettingsRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireProjectKey)
  projectBodyParsers(fastify)

  fastify.get('', {
    schema: op('GET', 'getProject', 'Project details', 'The project\'s settings, without keys or hashes. Needs the project key.', { params: ProjectIdParams }, { 200: response(ProjectSettingsEnvelopeSchema, 'The project\'s settings.') })
  }, async (request, reply) => {
    const { id } = request.params
    const details = await withProject(request, async project => await fastify.kv.projectDetails(id, project))
    return respond(request, reply, 200, `Project '${id}' details fetched successfully`, details)
  })

  fastify.put('', {
    validatorCompiler: registryChecksBody as never,
    schema: op('PUT', 'updateProject', 'Update project settings', 'Merges storage and security settings. Changing storage.on_disk takes effect at once. Authentication and id cannot be changed here.', { params: ProjectIdParams, body: ref(UpdateProjectSchema) }, { 200: response(OkEnvelopeSchema, 'Updated.') }, [507])
  }, async (request, reply) => {
    const { id } = request.params
    await withProject(request, async project => { await fastify.kv.updateProject(id, request.body, project) })
    return respond(request, reply, 200, `Project '${id}' updated successfully`)
  })
}

export default projectSettingsRoutes
