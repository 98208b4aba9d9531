/** Hand-written SVG: panels of grouped bar charts (no chart dependency). */

export interface Series {
  name: string;
  color: string;
  /** One value per group; undefined leaves a gap. */
  values: (number | undefined)[];
}

export interface Panel {
  title: string;
  /** Formats a value for its label above the bar. */
  label: (v: number) => string;
  groups: string[];
  series: Series[];
  /** A logarithmic value axis (for values spanning orders of magnitude). */
  log?: boolean;
}

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const PANEL_W = 320;
const PANEL_H = 240;
const PAD = { top: 36, right: 10, bottom: 34, left: 10 };

function panel(p: Panel, x0: number, y0: number): string {
  const out: string[] = [];
  const plotW = PANEL_W - PAD.left - PAD.right;
  const plotH = PANEL_H - PAD.top - PAD.bottom;
  const all = p.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined));
  const max = Math.max(1e-9, ...all) * 1.15;
  const floor = Math.min(...all.filter((v) => v > 0)) / 2;
  const height = (v: number) =>
    p.log
      ? (Math.log(Math.max(v, floor) / floor) / Math.log(max / floor)) * plotH
      : (v / max) * plotH;
  const groupW = plotW / p.groups.length;
  const barW = Math.min(24, (groupW * 0.8) / p.series.length);
  const baseY = y0 + PAD.top + plotH;
  out.push(
    `<text x="${x0 + PANEL_W / 2}" y="${y0 + 20}" text-anchor="middle" font-weight="bold">${esc(p.title + (p.log ? " (log scale)" : ""))}</text>`,
    `<line x1="${x0 + PAD.left}" y1="${baseY}" x2="${x0 + PAD.left + plotW}" y2="${baseY}" stroke="#444"/>`,
  );
  p.groups.forEach((g, gi) => {
    const gx = x0 + PAD.left + gi * groupW + (groupW - barW * p.series.length) / 2;
    p.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === undefined) return;
      const h = height(v);
      const x = gx + si * barW;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${(baseY - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name}, ${g}: ${p.label(v)}`)}</title></rect>`,
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(baseY - h - 3).toFixed(1)}" text-anchor="middle" font-size="8">${esc(p.label(v))}</text>`,
      );
    });
    out.push(
      `<text x="${(x0 + PAD.left + (gi + 0.5) * groupW).toFixed(1)}" y="${baseY + 16}" text-anchor="middle">${esc(g)}</text>`,
    );
  });
  return out.join("\n");
}

/** Panels side by side, with one legend for the series of the first panel. */
export function chart(title: string, subtitle: string, panels: Panel[]): string {
  const width = PANEL_W * panels.length;
  const legendY = PANEL_H + 56;
  const height = legendY + 24;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="34" fill="#555">${esc(subtitle)}</text>`,
  ];
  panels.forEach((p, i) => parts.push(panel(p, i * PANEL_W, 40)));
  let lx = 10;
  for (const s of panels[0]?.series ?? []) {
    parts.push(
      `<rect x="${lx}" y="${legendY}" width="12" height="12" fill="${s.color}"/>`,
      `<text x="${lx + 16}" y="${legendY + 10}">${esc(s.name)}</text>`,
    );
    lx += 24 + s.name.length * 6.5;
  }
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
