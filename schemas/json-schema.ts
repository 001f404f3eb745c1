import { ConfigSchema } from './config.js'

/** config.schema.json: the JSON Schema of config.json, from the one TypeBox schema the server validates with. */
export function configJsonSchema (): Record<string, unknown> {
  return { $schema: 'http://json-schema.org/draft-07/schema#', ...JSON.parse(JSON.stringify(ConfigSchema)) }
}
