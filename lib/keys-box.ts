import type { GeneratedKey } from './registry.js'

/** New keys in a box, shown once: they are not stored in plain text anywhere. */
export function formatGeneratedKeys (keys: GeneratedKey[]): string {
  const rows = keys.map(k => [k.scope === 'system' ? 'system key' : `project '${k.id}'`, k.key] as const)
  const label = Math.max(...rows.map(r => r[0].length))
  const lines = [
    'New API keys. Store them now: they will not be shown again.',
    '',
    ...rows.map(([name, key]) => `${name.padEnd(label)}  ${key}`)
  ]
  const width = Math.max(...lines.map(l => l.length))
  const bar = '─'.repeat(width + 2)
  return [`┌${bar}┐`, ...lines.map(l => `│ ${l.padEnd(width)} │`), `└${bar}┘`].join('\n') + '\n'
}
