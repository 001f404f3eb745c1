import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Teardown {
  teardown: (fn: () => unknown) => void
}

/** A fresh folder `<base>/<prefix>XXXXXX`; the caller removes it. */
export function makeTempDir (prefix = 'simple-kv-test-', base = tmpdir()): string {
  return mkdtempSync(join(base, prefix))
}

export function removeDir (dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

/** A fresh folder, removed when the test ends. */
export function tempDir (t: Teardown, prefix?: string): string {
  const dir = makeTempDir(prefix)
  t.teardown(() => { removeDir(dir) })
  return dir
}
