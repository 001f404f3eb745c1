/** A failure with an HTTP status and a client-facing message; mapped to the envelope in one place. */
export class KvError extends Error {
  readonly statusCode: number
  readonly headers: Record<string, string> | undefined

  constructor (statusCode: number, message: string, headers?: Record<string, string>, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.name = 'KvError'
    this.statusCode = statusCode
    this.headers = headers
  }
}

/** Raised for a config file (or config update) that does not satisfy the schema. */
export class ConfigError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** Raised when a store file cannot be read; start-up stops rather than overwrite it. */
export class StorageError extends Error {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StorageError'
  }
}
