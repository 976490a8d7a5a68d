#!/usr/bin/env node
// The CLI, bundled into one file by `npm run build` (scripts/bundle.js).
import '../dist/paene.mjs';
