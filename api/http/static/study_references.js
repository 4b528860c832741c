"use strict";
// The study page's reference markers; loaded before study.js, whose helpers (el, fmt, pct,
// state) it uses when called.
// ---- reference markers (results.references: one per reference network, docs/method.md §6) ----
// each reference is a vertical line at its mean error over seeds, its band (min–max over
// seeds) shaded, and a label with its percentile in each space ("beats 62% of AnyNetX_E")
const REF_COLORS = ["#111827", "#92400e", "#be185d", "#0f766e", "#6b7280", "#1e3a8a"];
function referencesOf(r) {
  return Object.values(r.references || {});
}
function referenceMarkers(r) {
  const traces = [], shapes = [], annotations = [];
  referencesOf(r).forEach((ref, i) => {
    if (ref.mean === null || ref.mean === undefined) return;
    const color = REF_COLORS[i % REF_COLORS.length];
    shapes.push({ type: "rect", xref: "x", yref: "paper", x0: ref.lo, x1: ref.hi, y0: 0, y1: 1,
      fillcolor: rgba(color, 0.12), line: { width: 0 }, layer: "below" });
    traces.push({ x: [ref.mean, ref.mean], y: [0, 1], mode: "lines", meta: "reference",
      line: { color, width: 2, dash: "dash" }, hoverinfo: "name",
      name: `${plotlyText(ref.name)} (reference, ${ref.n} seeds, mean ${pct(ref.mean)})` });
    // the server's own words ("resnet20 beats 62% of X", as the table shows them): a
    // percentage rounded here could differ (0.625: 63% in JavaScript, 62% in Python)
    const head = `${ref.name} beats `;
    const beats = Object.entries(ref.text || {}).filter(([space]) => (ref.percentile || {})[space] !== null)
      .map(([, t]) => plotlyText(t.startsWith(head) ? t.slice(head.length) : t));
    annotations.push({ x: ref.mean, y: 0.98 - 0.07 * i, xref: "x", yref: "paper", xanchor: "left",
      showarrow: false, font: { size: 11, color }, bgcolor: "rgba(255,255,255,0.75)",
      text: `${plotlyText(ref.name)} ${pct(ref.mean)}` + (beats.length ? `: beats ${beats.join(", ")}` : "") });
  });
  return { traces, shapes, annotations };
}
// reference trials (every seed at every level) are counted apart from the spaces' trials
function renderReferenceProgress(study, box) {
  for (const [name, levels] of Object.entries(study.progress.references || {})) {
    const c = spaceCounts(levels);
    const total = Object.values(c).reduce((a, b) => a + b, 0) - c.not_learned || 1;
    const row = el("div", null, "progress-row reference");
    row.dataset.reference = name;
    const bar = el("div", null, "bar");
    const span = el("span", null, "done");
    span.style.left = "0%"; span.style.width = `${(100 * c.done) / total}%`; bar.append(span);
    // a refine child's seeds copied from its parent are done without a training: say so
    const marker = state.results && state.results.references && state.results.references[name];
    const reused = marker && marker.n_reused ? ` (${marker.n_reused} at this level reused, not trained)` : "";
    row.append(el("span", `${name} (reference)`, "label"), bar,
      el("span", `${c.done} done${reused} · ${c.running} running · ${c.waiting} waiting` +
        (c.failed + c.diverged ? ` · ${c.failed + c.diverged} failed/diverged` : ""), "count"));
    box.append(row);
  }
}
function renderReferences(r) {
  const refs = referencesOf(r);
  const table = document.getElementById("references");
  table.hidden = !refs.length;
  table.querySelector("tbody").replaceChildren(...refs.map((ref) => {
    const tr = el("tr");
    tr.dataset.reference = ref.name;
    const texts = Object.values(ref.text || {});
    tr.append(el("td", ref.name), el("td", `${ref.n} of ${ref.seeds}` + (ref.n_pending ? ` (${ref.n_pending} pending)` : "")),
      el("td", pct(ref.mean)), el("td", ref.mean === null ? "–" : `${pct(ref.lo)} – ${pct(ref.hi)}`),
      el("td", fmt(ref.flops)), el("td", fmt(ref.params)),
      el("td", texts.join(" · ") + (ref.reused ? ` · ${ref.reused}` : "")));
    return tr;
  }));
}
// spaces with more than 10% of their trainings at chance: their EDFs are not of learned nets
