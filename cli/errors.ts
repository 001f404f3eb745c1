/** A mistake in the command line: one line for stderr, followed by the usage; exit code 2. */
export class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** A command that was understood but cannot be done (file exists, server running, …); exit code 1. */
export class CliError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CliError'
  }
}
