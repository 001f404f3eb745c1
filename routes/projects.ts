import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { SystemOkEnvelopeSchema, ref } from '../schemas/envelope.js'
import { CreateProjectSchema } from '../schemas/project.js'
import { NewKeyEnvelopeSchema, ProjectCreatedEnvelopeSchema, ProjectListEnvelopeSchema } from '../schemas/responses.js'
import { ForbiddenError } from '../lib/errors.js'
import { respond } from '../plugins/envelope.js'
import { ProjectIdParams, operations, projectBodyParsers, registryChecksBody, response } from './schemas.js'

const op = operations('projects', 'system')

/** Managing projects: registered under /api/v1/projects, every route behind the system key. */
const projectRoutes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireSystemKey)
  projectBodyParsers(fastify)

  fastify.get('', {
    schema: op('GET', 'listProjects', 'List projects', 'Every project\'s settings keyed by id, without keys or hashes. 403 when project_discoverable is off.', {}, { 200: response(ProjectListEnvelopeSchema, 'Projects keyed by id.') }, [403])
  }, async (request, reply) => {
    if (!fastify.kv.projectDiscoverable) throw new ForbiddenError('Project listing is disabled')
    return respond(request, reply, 200, 'Project listing fetched successfully', await fastify.kv.listProjects())
  })

  fastify.post('', {
    validatorCompiler: registryChecksBody as never,
    schema: op('POST', 'createProject', 'Create a project', 'Creates a project with its own key (returned once) and store. Omitted settings take the defaults.', { body: ref(CreateProjectSchema) }, { 201: response(ProjectCreatedEnvelopeSchema, 'Created; data holds the new key when authentication is on.') }, [507])
  }, async (request, reply) => {
    const key = await fastify.kv.createProject(request.body)
    return key === null
      ? respond(request, reply, 201, 'Project created successfully. No API key generated (authentication for this project may be disabled).')
      : respond(request, reply, 201, 'Project created successfully. Store the returned API key securely as it may not be shown again.', { new_api_key: key })
  })

  fastify.post('/:id/config/regenerate-api-key', {
    schema: op('POST', 'regenerateProjectKey', 'Regenerate a project key', 'Issues a new project key; the old one stops working at once.', { params: ProjectIdParams }, { 200: response(NewKeyEnvelopeSchema, 'The new key, shown only here.') }, [404, 409, 507])
  }, async (request, reply) => {
    const { id } = request.params
    const key = await fastify.kv.regenerateKey(id)
    return respond(request, reply, 200, `API key regenerated successfully for project '${id}'`, { new_api_key: key })
  })

  fastify.delete('/:id', {
    schema: op('DELETE', 'deleteProject', 'Delete a project', 'Removes the project, its settings and its files.', { params: ProjectIdParams }, { 200: response(SystemOkEnvelopeSchema, 'Deleted.') }, [404, 507])
  }, async (request, reply) => {
    const { id } = request.params
    await fastify.kv.deleteProject(id)
    return respond(request, reply, 200, `Project '${id}' deleted successfully`)
  })
}

export default projectRoutes
