/** Where the command line writes: the process's streams, or a capture in tests. */
export interface Io {
  stdout: (text: string) => void
  stderr: (text: string) => void
  env: NodeJS.ProcessEnv
}

/** The process's own streams and environment. */
export const processIo: Io = {
  stdout: (text: string) => { process.stdout.write(text) },
  stderr: (text: string) => { process.stderr.write(text) },
  env: process.env
}
