import { formatGeneratedKeys } from '../lib/keys-box.js'
import type { GeneratedKey } from '../lib/registry.js'

export interface BannerProject {
  id: string
  onDisk: boolean
  /** Shown in the Storage column in place of disk/memory (e.g. redis). */
  storage?: string
  auth: boolean
  /** Number of keys in the project's store. */
  keys: number
}

export interface BannerInfo {
  version: string
  /** Where the server listens, e.g. http://127.0.0.1:23849 */
  url: string
  /** A URL a browser on this machine can open (differs from `url` for 0.0.0.0 and ::). */
  localUrl: string
  docs: boolean
  configFile: string
  /** The config file did not exist and was just written with the defaults. */
  configCreated?: boolean
  dataDir: string
  systemAuth: boolean
  projects: BannerProject[]
  generatedKeys: GeneratedKey[]
}

/** ANSI styles, or plain text when colour is off (pipes, files, NO_COLOR). */
function palette (color: boolean): Record<'bold' | 'dim' | 'red' | 'yellow' | 'green' | 'cyan', (s: string) => string> {
  const style = (open: string, close: string) => (s: string) => color ? `\x1b[${open}m${s}\x1b[${close}m` : s
  return {
    bold: style('1', '22'),
    dim: style('2', '22'),
    red: style('1;31', '39;22'),
    yellow: style('33', '39'),
    green: style('32', '39'),
    cyan: style('36', '39')
  }
}

/** The table of projects, columns padded on the plain text so colour codes do not skew them. */
function projectTable (projects: BannerProject[], c: ReturnType<typeof palette>): string[] {
  if (projects.length === 0) return ['  No projects yet: create one with POST /api/v1/projects (system key).']
  const rows = projects.map(p => ({
    cells: [p.id, p.storage ?? (p.onDisk ? 'disk' : 'memory'), p.auth ? 'on' : 'OFF', String(p.keys)],
    auth: p.auth
  }))
  const header = ['Project', 'Storage', 'Auth', 'Keys']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => r.cells[i].length)))
  const line = (cells: string[], paint: (cell: string, i: number) => string = s => s): string =>
    '  ' + cells.map((cell, i) => {
      const pad = ' '.repeat(widths[i] - cell.length)
      return i === 3 ? pad + paint(cell, i) : paint(cell, i) + pad
    }).join('  ')
  return [
    line(header, s => c.bold(s)),
    ...rows.map(r => line(r.cells, (s, i) => i === 2 && !r.auth ? c.red(s) : s))
  ]
}

/** The warning for a scope anyone can use. */
export function authOffWarning (scope: { scope: 'system' } | { scope: 'project', id: string }): string {
  return scope.scope === 'system'
    ? 'WARNING: authentication is OFF for the system scope: anyone who can reach this server can create, change and delete projects.'
    : `WARNING: authentication is OFF for project '${scope.id}': anyone who can reach this server can read and change its data.`
}

/** The start-up banner: where the server is, what it serves, and what needs attention. */
export function formatBanner (info: BannerInfo, opts: { color?: boolean } = {}): string {
  const c = palette(opts.color === true)
  const label = (s: string): string => c.dim(s.padEnd(11))
  const lines = [
    '',
    `  ${c.bold(c.cyan('Simple KV'))} ${c.bold(info.version)}`,
    '',
    `  ${label('Listening')}${c.green(info.url)}${info.url === info.localUrl ? '' : c.dim(`  (on this machine: ${info.localUrl})`)}`,
    `  ${label('Docs')}${info.docs ? `${info.localUrl}/docs` : c.dim('off (served by the host app)')}`,
    `  ${label('Config')}${info.configFile}${info.configCreated === true ? c.yellow('  (new: written with the defaults)') : ''}`,
    `  ${label('Data')}${info.dataDir}`,
    `  ${label('System')}${info.systemAuth ? 'key required' : c.red('authentication OFF')}`,
    '',
    ...projectTable(info.projects, c),
    ''
  ]
  const warnings = [
    ...(info.systemAuth ? [] : [authOffWarning({ scope: 'system' })]),
    ...info.projects.filter(p => !p.auth).map(p => authOffWarning({ scope: 'project', id: p.id }))
  ]
  for (const warning of warnings) lines.push(`  ${c.red('!!')} ${c.red(warning)}`)
  if (warnings.length > 0) lines.push('')
  let out = lines.join('\n') + '\n'
  if (info.generatedKeys.length > 0) {
    out += formatGeneratedKeys(info.generatedKeys)
    out += `  Use a key as: curl -H 'Authorization: Bearer <key>' ${info.localUrl}/status\n\n`
  }
  return out
}
