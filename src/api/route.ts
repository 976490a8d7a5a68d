// One route of the API (server.ts, verbs.ts): its method and path, and how it answers.

import type http from 'node:http';

export interface Call {
  m: RegExpMatchArray;
  body: unknown;
  query: URLSearchParams;
  /** the request: a streaming route reads its body itself */
  req: http.IncomingMessage;
  res: http.ServerResponse;
}

/** A route: its method and path, and whether it answers itself (a stream) rather than with a JSON value. */
export interface Route {
  method: string;
  re: RegExp;
  run: (c: Call) => Promise<unknown>;
  streams?: boolean;
}
