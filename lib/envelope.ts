import type { SystemInfo } from './sysinfo.js'

export interface Envelope<T = null> {
  status_code: number
  message: string
  System: SystemInfo | null
  data: T
}

export function envelope<T> (statusCode: number, message: string, data: T, system: SystemInfo | null = null): Envelope<T> {
  return { status_code: statusCode, message, System: system, data }
}
