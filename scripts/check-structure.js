// The house's structure, checked (npm run lint): no import cycle in src/
// (type-only imports count: a cycle of types is still two rooms that cannot
// be read apart), no import from a lower room into a higher one, and the
// model pure (no node: modules with I/O). docs/architecture.md draws the
// same rooms.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src');

// Rooms, lowest first: a file may import from its own room and the rooms below it.
export const ROOMS = [
  ['model', 'proto'], // pure: names, limits, capabilities and their policy; the TypeScript -> C messages
  ['bpf', 'seccomp'], // pure program builders (eBPF, seccomp), and the BPF loader's adapter
  ['kernel', 'cgroups', 'image', 'net', 'context'], // kernel adapters, the image store, the network (plans and adapters), the context's config (pure, made of net's and the model's)
  ['runtime', 'oci'], // the context lifecycle; the OCI runtime (paene-runc)
  ['check', 'bench', 'api'], // the experiment suites, the benchmarks, the JSON API
  ['cli'], // argument parsing and printing
];
const rank = new Map(ROOMS.flatMap((rooms, i) => rooms.map((r) => [r, i])));
// the model may use none of these (pure: tested anywhere, no root, no host)
const IMPURE = ['node:fs', 'node:child_process', 'node:net', 'node:os', 'node:dgram', 'node:http', 'node:timers/promises'];

function files(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

const graph = new Map();
const problems = [];
for (const f of files(src)) {
  const text = fs.readFileSync(f, 'utf8');
  const deps = [];
  const re = /(?:import|export)\s[^'"]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)/g;
  for (let m; (m = re.exec(text)); ) {
    const spec = m[1] ?? m[2];
    const room = path.relative(src, f).split(path.sep)[0];
    if (spec.startsWith('.')) deps.push(path.resolve(path.dirname(f), spec.replace(/\.js$/, '.ts')));
    else if (room === 'model' && IMPURE.includes(spec))
      problems.push(`${path.relative(root, f)}: the model imports ${spec} (it must stay pure)`);
  }
  graph.set(f, deps);
}

for (const [f, deps] of graph) {
  const from = path.relative(src, f).split(path.sep)[0];
  for (const d of deps) {
    const to = path.relative(src, d).split(path.sep)[0];
    if (!rank.has(from) || !rank.has(to))
      problems.push(`${path.relative(root, f)}: room '${rank.has(from) ? to : from}' is not in scripts/check-structure.js ROOMS`);
    else if (rank.get(to) > rank.get(from))
      problems.push(`${path.relative(root, f)} imports ${path.relative(root, d)}: ${from} is below ${to}`);
  }
}

// cycles: Tarjan's strongly connected components
let index = 0;
const idx = new Map();
const low = new Map();
const stack = [];
const on = new Set();
function visit(v) {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  on.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!graph.has(w)) continue;
    if (!idx.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
  }
  if (low.get(v) === idx.get(v)) {
    const scc = [];
    let w;
    do {
      w = stack.pop();
      on.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) problems.push(`import cycle: ${scc.map((s) => path.relative(src, s)).join(' <-> ')}`);
  }
}
for (const v of graph.keys()) if (!idx.has(v)) visit(v);

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`check-structure: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(
  `check-structure: ${graph.size} files, ${ROOMS.flat().length} rooms, no cycle, no import from a lower room into a higher one, the model pure`,
);
