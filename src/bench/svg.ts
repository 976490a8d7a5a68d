// A small hand-written SVG line plot (no dependency): memory used against
// the number of contexts, one colour per variant, one dash style per measure.

export interface Series {
  label: string;
  color: string;
  dashed?: boolean;
  points: { x: number; y: number }[];
}

export interface PlotSpec {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  width?: number;
  height?: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** 1, 2, 5 × 10^k steps giving about `count` ticks over [0, max]. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1] < max) ticks.push(Number((ticks[ticks.length - 1] + step).toPrecision(12)));
  return ticks;
}

export function linePlot(spec: PlotSpec): string {
  const W = spec.width ?? 760;
  const H = spec.height ?? 460;
  const m = { left: 78, right: 24, top: spec.subtitle ? 62 : 44, bottom: 58 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const all = spec.series.flatMap((s) => s.points);
  const xTicks = niceTicks(Math.max(1, ...all.map((p) => p.x)));
  const yTicks = niceTicks(Math.max(1e-9, ...all.map((p) => p.y)));
  const xMax = xTicks[xTicks.length - 1];
  const yMax = yTicks[yTicks.length - 1];
  const X = (x: number) => m.left + (x / xMax) * pw;
  const Y = (y: number) => m.top + ph - (Math.max(0, y) / yMax) * ph;
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`);
  if (spec.subtitle) out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(spec.subtitle)}</text>`);
  for (const t of yTicks) {
    out.push(`<line x1="${m.left}" y1="${f(Y(t))}" x2="${m.left + pw}" y2="${f(Y(t))}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${m.left - 6}" y="${f(Y(t) + 4)}" text-anchor="end">${t}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${f(X(t))}" y1="${m.top}" x2="${f(X(t))}" y2="${m.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${f(X(t))}" y="${m.top + ph + 16}" text-anchor="middle">${t}</text>`);
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  for (const s of spec.series) {
    if (s.points.length === 0) continue;
    const d = s.points.map((p, i) => `${i ? 'L' : 'M'}${f(X(p.x))} ${f(Y(p.y))}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
  }
  // legend, top left inside the plot
  spec.series.forEach((s, i) => {
    const ly = m.top + 16 + i * 18;
    const lx = m.left + 12;
    out.push(
      `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 28}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${lx + 34}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
