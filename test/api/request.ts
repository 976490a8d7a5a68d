// One HTTP request over a unix socket, for the API tests.

import http from 'node:http';

export function request(socket: string, method: string, url: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  // a length always: Node sends a DELETE's body unframed otherwise
  const headers = { 'content-type': 'application/json', 'content-length': data === undefined ? 0 : Buffer.byteLength(data) };
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, method, path: url, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end(data);
  });
}
