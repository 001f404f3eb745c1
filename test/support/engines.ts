import tap, { type Test } from 'tap'
import type { KvConfig } from '../../lib/config.js'
import { testConfig } from './app.js'

/** The test config with p1 on disk or memory-only, and `more` applied. */
export function engineConfig (onDisk: boolean, more: (c: KvConfig) => void = () => {}): KvConfig {
  return testConfig(c => {
    c.projects![0].storage = { on_disk: onDisk }
    more(c)
  })
}

/** A test run twice: on an on-disk and on a memory-only project. */
export function onBothEngines (name: string, fn: (t: Test, onDisk: boolean) => Promise<void>): void {
  for (const onDisk of [true, false]) {
    tap.test(`${name} (${onDisk ? 'on disk' : 'memory only'})`, async t => { await fn(t, onDisk) })
  }
}
