import { writeFileSync } from 'node:fs'
import { configJsonSchema } from '../schemas/json-schema.js'

writeFileSync(new URL('../../config.schema.json', import.meta.url), JSON.stringify(configJsonSchema(), null, 2) + '\n')
process.stdout.write('wrote config.schema.json\n')
