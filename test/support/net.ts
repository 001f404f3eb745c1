import { request, type Agent, type IncomingHttpHeaders } from 'node:http'
import { createServer } from 'node:net'

/** Every server the tests and the bench start listens here, and only here. */
export const HOST = '127.0.0.1'

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const probe = createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, HOST, () => {
      const address = probe.address()
      if (address === null || typeof address === 'string') {
        probe.close()
        reject(new Error('could not get a free port'))
        return
      }
      probe.close(() => { resolve(address.port) })
    })
  })
}

export interface HttpReply {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

export interface RequestOptions {
  /** Default: a fresh connection for this request. */
  agent?: Agent | false
  /** Give up after this long without a byte (default: no limit). */
  timeoutMs?: number
}

/** One request to 127.0.0.1:`port`; the body is sent with its length. */
export async function httpRequest (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string, opts: RequestOptions = {}): Promise<HttpReply> {
  return await new Promise((resolve, reject) => {
    const req = request({
      host: HOST,
      port,
      method,
      path,
      agent: opts.agent ?? false,
      timeout: opts.timeoutMs,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-length': Buffer.byteLength(body) }) }
    }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }) })
      res.on('error', reject)
    })
    req.on('timeout', () => { req.destroy(new Error(`no answer after ${opts.timeoutMs ?? 0} ms`)) })
    req.on('error', reject)
    req.end(body)
  })
}
