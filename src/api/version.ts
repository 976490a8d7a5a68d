// The versions GET /v1/version answers: paene's (package.json's, checked by
// test/unit/api-version.test.ts) and the API's path prefix.

export const PAENE_VERSION = '0.1.0';
export const API_VERSION = 'v1';
