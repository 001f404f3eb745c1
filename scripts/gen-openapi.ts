import { writeFileSync } from 'node:fs'
import { openApiDocument } from './openapi-document.js'

writeFileSync(new URL('../../openapi/openapi.json', import.meta.url), JSON.stringify(await openApiDocument(), null, 2) + '\n')
process.stdout.write('wrote openapi/openapi.json\n')
