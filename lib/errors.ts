/**
 * Domain errors: what went wrong, in the store's terms. The HTTP layer maps
 * each kind to a status in one place (plugins/envelope.ts); nothing here
 * knows about HTTP.
 */
export type FailureKind =
  | 'invalid'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'limit_exceeded'
  | 'precondition_failed'
  | 'precondition_required'
  | 'busy'
  | 'storage_unavailable'
  | 'unreachable'

export class KvError extends Error {
  readonly kind: FailureKind
  /** For temporary failures: when a retry may succeed, in seconds. */
  readonly retryAfterSeconds: number | undefined
  /** What the client needs to act on the failure (the current ETag, the failed checks), or null. */
  readonly details: unknown

  constructor (kind: FailureKind, message: string, options: { cause?: unknown, retryAfterSeconds?: number, details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.kind = kind
    this.retryAfterSeconds = options.retryAfterSeconds
    this.details = options.details ?? null
  }
}

/** The request itself is wrong: a missing or malformed field, a bad body. */
export class InvalidInputError extends KvError {
  constructor (message: string) {
    super('invalid', message)
  }
}

/** The settings of the server or the project do not allow this. */
export class ForbiddenError extends KvError {
  constructor (message: string) {
    super('forbidden', message)
  }
}

/** A project or key that does not exist. */
export class NotFoundError extends KvError {
  constructor (message: string) {
    super('not_found', message)
  }
}

/** The request conflicts with the current state or settings. */
export class ConflictError extends KvError {
  constructor (message: string) {
    super('conflict', message)
  }
}

/** A precondition on a key does not hold; `details` carries the key's current ETag. */
export class PreconditionFailedError extends KvError {
  constructor (key: string, etag: string | null) {
    super('precondition_failed', `Precondition failed for key '${key}'`, { details: { etag } })
  }
}

/** The project demands a precondition on every write and the request has none. */
export class PreconditionRequiredError extends KvError {
  constructor (message: string) {
    super('precondition_required', message)
  }
}

/** Some checks of a transaction failed; nothing was applied. */
export class TxnConflictError extends KvError {
  constructor (failed: Array<{ index: number, key: string, etag: string | null }>) {
    super('conflict', 'Transaction checks failed', { details: { failed } })
  }
}

/** A key, value or store over its configured bound; nothing was changed. */
export class LimitExceededError extends KvError {
  constructor (message: string) {
    super('limit_exceeded', message)
  }
}

/** Too much work queued right now; the same request may succeed shortly. */
export class BusyError extends KvError {
  constructor (message: string, retryAfterSeconds = 1) {
    super('busy', message, { retryAfterSeconds })
  }
}

/** The change could not be made durable; nothing was changed. */
export class StorageUnavailableError extends KvError {
  constructor (message: string, cause?: unknown) {
    super('storage_unavailable', message, { cause })
  }
}

/**
 * The storage server (Redis) cannot be reached or did not answer in time. A
 * write that fails so either happened as a whole or not at all: the engine's
 * writes are single atomic scripts.
 */
export class StorageUnreachableError extends KvError {
  constructor (message: string, cause?: unknown, retryAfterSeconds = 1) {
    super('unreachable', message, { cause, retryAfterSeconds })
  }
}

/**
 * The project's settings or key changed (on this or another instance) since
 * the request was checked against them; the store did nothing. The request is
 * checked again against the project as it is now and run again; should this
 * reach a client, it is a 503 to retry.
 */
export class StaleProjectError extends KvError {
  constructor (projectId: string) {
    super('unreachable', `Project '${projectId}' changed while the request was checked; retry`, { retryAfterSeconds: 1 })
  }
}

export function projectNotFound (id: string): NotFoundError {
  return new NotFoundError(`Project with id '${id}' not found`)
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
