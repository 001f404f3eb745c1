import type { Envelope } from '../schemas/envelope.js'
import type { SystemInfo } from '../schemas/system.js'

export function envelope<T> (statusCode: number, message: string, data: T, system: SystemInfo | null = null): Envelope<T> {
  return { status_code: statusCode, message, System: system, data }
}
