// One HTTP request over a unix socket, for the API tests.

import http from 'node:http';

export interface Answer {
  status: number;
  json: unknown;
  headers: http.IncomingHttpHeaders;
}

/** A request with a JSON body (or `raw`, sent as it is). */
export function request(socket: string, method: string, url: string, body?: unknown, raw?: string | Buffer): Promise<Answer> {
  const data = raw ?? (body === undefined ? undefined : JSON.stringify(body));
  // a length always: Node sends a DELETE's body unframed otherwise
  const headers = { 'content-type': 'application/json', 'content-length': data === undefined ? 0 : Buffer.byteLength(data) };
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request({ socketPath: socket, method, path: url, headers }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined, headers: res.headers }));
    });
    // the service may answer (413) and close before it has read all of a large body: an error after the answer is that
    req.on('error', (e: NodeJS.ErrnoException) => (answered && (e.code === 'EPIPE' || e.code === 'ECONNRESET') ? undefined : reject(e)));
    req.end(data);
  });
}

/** The first `n` lines of a streamed answer; the connection is closed after them. */
export function lines(socket: string, url: string, n: number, timeoutMs = 20_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const out: string[] = [];
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`${url}: ${out.length} of ${n} lines in ${timeoutMs} ms`));
    }, timeoutMs);
    const req = http.get({ socketPath: socket, path: url }, (res) => {
      let buf = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0 && out.length < n; i = buf.indexOf('\n')) {
          out.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
        if (out.length >= n) {
          clearTimeout(timer);
          req.destroy();
          resolve(out);
        }
      });
    });
    req.on('error', (e) => (out.length >= n ? undefined : reject(e)));
  });
}

/** A request whose answer is kept as bytes (a tar), with its status. */
export function requestRaw(socket: string, method: string, url: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  const headers = { 'content-length': body === undefined ? 0 : body.length };
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: url, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
