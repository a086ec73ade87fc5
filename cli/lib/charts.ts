/** Small self-contained SVG charts for the HTML reports (no scripts, opens offline). */

export interface Series {
  name: string;
  points: Array<[number, number]>;
  color?: string;
}

const PALETTE = ["#3b6fb6", "#d9822b", "#2e9e5b", "#b23a48", "#7d5ba6", "#5f6b7a"];
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
  const err = ((hi - lo) / n) / step;
  const mult = err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
  const s = step * mult;
  const out: number[] = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + 1e-9; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (Math.abs(v) >= 1e3) return `${(v / 1e3).toPrecision(3)}k`;
  return Number(v.toPrecision(3)).toString();
}

export function lineChart(opts: { title: string; xLabel: string; yLabel: string; series: Series[]; logX?: boolean; width?: number; height?: number }): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 320;
  const m = { l: 64, r: 16, t: 32, b: 48 };
  const pts = opts.series.flatMap((s) => s.points);
  if (pts.length === 0) return `<p><em>${esc(opts.title)}: no data</em></p>`;
  const tx = (x: number) => (opts.logX ? Math.log2(Math.max(x, 1e-9)) : x);
  const xs = pts.map((p) => tx(p[0]));
  const ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const y0 = 0;
  const y1 = Math.max(...ys) * 1.08 || 1;
  const X = (x: number) => m.l + ((tx(x) - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (y: number) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);
  for (const t of niceTicks(y0, y1)) parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/><text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  const xTicks = [...new Set(pts.map((p) => p[0]))].sort((a, b) => a - b);
  for (const t of xTicks.length <= 12 ? xTicks : niceTicks(Math.min(...xTicks), Math.max(...xTicks))) parts.push(`<text x="${X(t)}" y="${H - m.b + 16}" text-anchor="middle">${fmt(t)}</text>`);
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/><line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${H - m.b}" stroke="#333"/>`);
  parts.push(`<text x="${(W + m.l) / 2}" y="${H - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${(H - m.b + m.t) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  opts.series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length];
    const sorted = [...s.points].sort((a, b) => a[0] - b[0]);
    if (sorted.length > 1) parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${sorted.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" ")}"/>`);
    for (const p of sorted) parts.push(`<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1]).toFixed(1)}" r="3" fill="${c}"><title>${esc(s.name)}: ${fmt(p[0])} → ${fmt(p[1])}</title></circle>`);
    parts.push(`<rect x="${m.l + 10}" y="${m.t + 4 + i * 15}" width="10" height="10" fill="${c}"/><text x="${m.l + 24}" y="${m.t + 13 + i * 15}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

export function barChart(opts: { title: string; yLabel: string; groups: string[]; series: Array<{ name: string; values: number[] }>; width?: number; height?: number }): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 300;
  const m = { l: 64, r: 16, t: 32, b: 48 };
  const all = opts.series.flatMap((s) => s.values).filter(Number.isFinite);
  const y1 = (Math.max(0, ...all) || 1) * 1.1;
  const Y = (y: number) => H - m.b - (y / y1) * (H - m.t - m.b);
  const gw = (W - m.l - m.r) / Math.max(1, opts.groups.length);
  const bw = (gw * 0.8) / Math.max(1, opts.series.length);
  const parts: string[] = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-size="13" font-weight="bold">${esc(opts.title)}</text>`);
  for (const t of niceTicks(0, y1)) parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${Y(t)}" y2="${Y(t)}" stroke="#eee"/><text x="${m.l - 6}" y="${Y(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  parts.push(`<text transform="translate(14 ${(H - m.b + m.t) / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  opts.groups.forEach((g, gi) => {
    parts.push(`<text x="${m.l + gi * gw + gw / 2}" y="${H - m.b + 16}" text-anchor="middle">${esc(g)}</text>`);
    opts.series.forEach((s, si) => {
      const v = s.values[gi];
      if (!Number.isFinite(v)) return;
      const x = m.l + gi * gw + gw * 0.1 + si * bw;
      parts.push(`<rect x="${x.toFixed(1)}" y="${Y(v).toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${(H - m.b - Y(v)).toFixed(1)}" fill="${PALETTE[si % PALETTE.length]}"><title>${esc(s.name)} ${esc(g)}: ${fmt(v)}</title></rect>`);
      parts.push(`<text x="${(x + bw / 2 - 1).toFixed(1)}" y="${(Y(v) - 3).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(v)}</text>`);
    });
  });
  opts.series.forEach((s, i) => parts.push(`<rect x="${W - m.r - 110}" y="${m.t + i * 15}" width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/><text x="${W - m.r - 96}" y="${m.t + 9 + i * 15}">${esc(s.name)}</text>`));
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}" stroke="#333"/></svg>`);
  return parts.join("");
}

export function htmlPage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:1180px;margin:24px auto;padding:0 16px;color:#222}
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:12px}.note{background:#fff8e1;padding:8px 12px;border-left:4px solid #e0a800}
code{background:#f4f4f4;padding:1px 4px}</style></head><body>${body}</body></html>\n`;
}

export { esc };
