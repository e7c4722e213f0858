/* Small SVG line charts for the dashboard (no library): series of [x, y] points, an optional band. */
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

const PALETTE = ["#1f6feb", "#bf3989", "#1a7f37", "#9a6700", "#8250df", "#cf222e", "#0a7ea4"];

/**
 * Draw `series` ([{name, points: [[x, y], ...]}]) into `svg`, replacing what was there.
 * opts: band [lo, hi] shaded, bad(y) -> true marks a point red, fmtX / fmtY label formatters.
 */
function drawLineChart(svg, series, opts) {
  opts = opts || {};
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const width = svg.clientWidth || 600, height = svg.clientHeight || 180;
  const pad = { l: 44, r: 8, t: 14, b: 20 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) {
    svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, svg).textContent = "no data yet";
    return;
  }
  let [x0, x1] = [Math.min(...pts.map((p) => p[0])), Math.max(...pts.map((p) => p[0]))];
  let ys = pts.map((p) => p[1]);
  if (opts.band) ys = ys.concat(opts.band);
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 1; y1 += 1; }
  const span = y1 - y0;
  y0 -= span * 0.05; y1 += span * 0.05;
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - ((y - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  if (opts.band) {
    svgEl("rect", { class: "band", x: pad.l, width: width - pad.l - pad.r,
                    y: sy(opts.band[1]), height: Math.max(0, sy(opts.band[0]) - sy(opts.band[1])) }, svg);
  }
  svgEl("line", { class: "axis", x1: pad.l, x2: pad.l, y1: pad.t, y2: height - pad.b }, svg);
  svgEl("line", { class: "axis", x1: pad.l, x2: width - pad.r, y1: height - pad.b, y2: height - pad.b }, svg);
  const fmtY = opts.fmtY || ((v) => String(Math.round(v * 100) / 100));
  const fmtX = opts.fmtX || ((v) => new Date(v).toLocaleTimeString());
  for (const v of [y0 + span * 0.05, y1 - span * 0.05]) {
    svgEl("text", { x: pad.l - 4, y: sy(v) + 3, "text-anchor": "end" }, svg).textContent = fmtY(v);
  }
  svgEl("text", { x: pad.l, y: height - 5 }, svg).textContent = fmtX(x0);
  svgEl("text", { x: width - pad.r, y: height - 5, "text-anchor": "end" }, svg).textContent = fmtX(x1);
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const line = s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
    svgEl("polyline", { class: "series", points: line, stroke: color }, svg);
    for (const p of s.points) {
      const bad = opts.bad && opts.bad(p[1]);
      if (bad || s.points.length < 60) {
        svgEl("circle", { cx: sx(p[0]), cy: sy(p[1]), r: bad ? 3.5 : 2, class: bad ? "dot-bad" : "", fill: color }, svg);
      }
    }
    if (series.length > 1) {
      svgEl("text", { class: "legend", x: pad.l + 6 + i * 70, y: pad.t - 3, style: `fill: ${color}` }, svg).textContent = s.name;
    }
  });
}
