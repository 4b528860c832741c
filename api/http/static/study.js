// The live page of one study: polls the results with ETag/If-None-Match (304 when nothing
// changed) every second and the progress every two, and redraws only what changed.
"use strict";
const STUDY = Number(location.pathname.split("/").filter(Boolean).pop());
// `asked` counts changes of the view: an answer to an older question is dropped, never shown
const state = { fidelity: null, normalize: "none", bins: null, range: null, etag: null,
  results: null, study: null, bands: false, shown: null, asked: 0 };
// Error-vs-parameter plots shown at first (more are a click away on the chips).
const DEFAULT_PARAMS = ["flops", "params", "acts", "depth", "p_bot_mul", "p_g", "p_wm", "p_w0", "p_wa"];
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04",
  "#db2777", "#4b5563", "#65a30d", "#7c3aed", "#0d9488"];
const PLOT_CFG = { displaylogo: false, responsive: true,
  toImageButtonOptions: { format: "svg", filename: `study-${STUDY}` } };

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}
function fmt(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString();
  return Math.abs(v) >= 1000 ? v.toExponential(3) : v.toFixed(digits);
}
function pct(v) { return v === null || v === undefined ? "–" : `${(100 * v).toFixed(2)}%`; }
function rgba(hex, a) { const n = parseInt(hex.slice(1), 16); return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`; }
function colorOf(name) { const i = state.spaceOrder.indexOf(name); return COLORS[(i < 0 ? 0 : i) % COLORS.length]; }
// Plotly renders a subset of HTML in trace names and titles (<a href>, <b>, ...): user text
// goes in as entities, so a space name shows as written and never becomes a link or markup
function plotlyText(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
state.spaceOrder = [];

// ---- progress (GET /api/studies/{id}: progress.spaces[name] is one LevelCounts per level) ----
const STATUSES = ["waiting", "running", "done", "failed", "diverged", "cancelled"];
function spaceCounts(levels) {
  // not_learned counts done trials at chance (a subset of done), kept apart from the statuses
  const out = Object.fromEntries([...STATUSES, "not_learned"].map((k) => [k, 0]));
  for (const level of levels || []) for (const k of Object.keys(out)) out[k] += level[k] || 0;
  return out;
}
function renderProgress(study) {
  document.getElementById("title").textContent = `${study.id}: ${study.name}`;
  document.title = `dse — ${study.name}`;
  const st = document.getElementById("status");
  st.textContent = study.status; st.className = `status ${study.status}`;
  renderCreation(study);
  const box = document.getElementById("progress");
  box.replaceChildren();
  for (const name of study.spaces) {
    const c = spaceCounts(study.progress.spaces[name]);
    const total = Object.values(c).reduce((a, b) => a + b, 0) - c.not_learned || 1; // among done
    const row = el("div", null, "progress-row");
    row.dataset.space = name;
    const bar = el("div", null, "bar");
    let left = 0;
    for (const k of ["done", "running", "failed"]) {
      const n = k === "failed" ? c.failed + c.diverged : c[k];
      const span = el("span", null, k);
      span.style.left = `${(100 * left) / total}%`; span.style.width = `${(100 * n) / total}%`;
      left += n; bar.append(span);
    }
    row.append(el("span", name, "label"), bar,
      el("span", `${c.done} done · ${c.running} running · ${c.waiting} waiting` +
        (c.failed + c.diverged ? ` · ${c.failed + c.diverged} failed/diverged` : "") +
        (c.not_learned ? ` · ${c.not_learned} at chance` : ""), "count"));
    box.append(row);
  }
  renderReferenceProgress(study, box);
  renderFailures(study.progress.failures || []);
  const sel = document.getElementById("fidelity");
  if (sel.options.length !== study.fidelities.length) {
    sel.replaceChildren(...study.fidelities.map((e, i) => { const o = el("option", `level ${i} · ${e} epochs`); o.value = e; return o; }));
    if (state.fidelity === null) state.fidelity = study.fidelities[0];
    sel.value = state.fidelity;
  }
  renderExports(study);
}
// why trials failed (progress.failures: one reason each, commonest first), as text
function renderFailures(failures) {
  const box = document.getElementById("failures");
  box.hidden = !failures.length;
  box.querySelector("ul").replaceChildren(...failures.map((f) => el("li", `${f.trials} × ${f.reason}`)));
}
// a study being created shows how far sampling and storing got; a failed one, why
function renderCreation(study) {
  const note = document.getElementById("creation");
  const c = study.creation;
  let text = "";
  if (study.status === "creating" && c) {
    text = `creating: ${c.sampled} of ${c.spaces} spaces sampled` +
      (c.total === null || c.total === undefined ? "" : `, ${c.stored} of ${c.total} trials stored`);
  } else if (study.status === "failed") text = `failed: ${study.reason || "no reason recorded"}`;
  note.textContent = text; note.className = study.status === "failed" ? "err" : "muted";
  note.hidden = !text;
}
// ---- exports: per space the trained winner and the fitted RegNet side by side, each with
// its flops, params, e_fit and the formats that build it (GET /api/studies/{id}/export lists
// them in `candidates`; a format not listed there would answer 422, so it is not a link) ----
const EXPORT_FORMATS = ["pycls", "timm", "torchvision", "json"];
const EXPORT_EVERY_MS = 10000;  // a running study asks again at most this often per space
const exportState = {};  // space -> { done, at, body }
function exportUrl(space, network, f) {
  return `/api/studies/${STUDY}/export?space=${encodeURIComponent(space)}&network=${network}&format=${f}`;
}
async function renderExports(study) {
  const box = document.getElementById("exports");
  if (box.dataset.spaces !== study.spaces.join("|")) {
    box.dataset.spaces = study.spaces.join("|");
    box.replaceChildren(...study.spaces.map((s) => { const d = el("div", `${s}: no finished trial yet`, "muted"); d.dataset.space = s; return d; }));
    const csv = el("a", "trials.csv"); csv.href = `/api/studies/${STUDY}/trials?format=csv&limit=1000`;
    box.append(csv);
  }
  for (const s of study.spaces) {
    const done = spaceCounts(study.progress.spaces[s]).done;
    const seen = exportState[s];
    if (!done || (seen && (seen.done === done || Date.now() - seen.at < EXPORT_EVERY_MS))) continue;
    exportState[s] = { done, at: Date.now(), body: seen && seen.body };
    try {
      const res = await fetch(`/api/studies/${STUDY}/export?space=${encodeURIComponent(s)}&format=json`, { cache: "no-store" });
      if (res.ok) exportState[s].body = await res.json();
    } catch (e) { /* the next poll retries */ }
    const body = exportState[s].body;
    const slot = [...box.children].find((c) => c.dataset.space === s);
    if (body && slot) slot.replaceWith(exportTable(s, body));
  }
}
function exportTable(space, body) {
  const box = el("div"); box.dataset.space = space;
  box.append(el("h3", space));
  const t = el("table"); const h = el("tr");
  ["network", "flops", "params", "e_fit", "stage depths", "stage widths", "error", "export"].forEach((k) => h.append(el("th", k)));
  t.append(h);
  for (const c of body.candidates || []) {
    const tr = el("tr");
    const what = el("td", c.network === "fit" ? "fitted RegNet" : `winner (trial ${c.trial_id})`);
    what.title = c.source;
    tr.append(what, el("td", fmt(c.complexity.flops)), el("td", fmt(c.complexity.params)),
      el("td", fmt(c.e_fit, 3)), el("td", (c.stage_depths || []).join(", ")),
      el("td", (c.stage_widths || []).join(", ")), el("td", c.error === null ? "not trained" : pct(c.error)));
    const links = el("td");
    for (const f of EXPORT_FORMATS) {
      const why = c.formats[f];
      if (why === null || why === undefined) {
        const a = el("a", f); a.href = exportUrl(space, c.network, f); a.target = "_blank"; links.append(a, " ");
      } else {
        const off = el("span", f, "muted"); off.style.textDecoration = "line-through";
        off.title = `${f} cannot build ${c.family}: ${why}`; links.append(off, " ");
      }
    }
    tr.append(links); t.append(tr);
  }
  box.append(t);
  const notes = (body.notes || []).filter((n) => /not RegNets|invalid|not buildable|input/.test(n));
  for (const n of notes) box.append(el("p", n, "muted"));
  return box;
}

// ---- results (GET /api/studies/{id}/edf) ----
function spacesOf(r) {
  const s = r.spaces || {};
  return Array.isArray(s) ? s : Object.entries(s).map(([name, v]) => ({ name, ...v }));
}
function renderEdf(r) {
  const spaces = spacesOf(r);
  const traces = [];
  for (const s of spaces) {
    const edf = s.edf;  // one shape: {x, F, band {lo, hi, epsilon, alpha}, subsampled}
    const x = edf.x, y = edf.F;
    const color = colorOf(s.name);
    const band = edf.band;
    if (state.bands && band && band.lo && band.hi && x.length) {
      traces.push({ x, y: band.lo, mode: "lines", line: { width: 0, shape: "hv" }, hoverinfo: "skip", showlegend: false, meta: "band" });
      traces.push({ x, y: band.hi, mode: "lines", line: { width: 0, shape: "hv" }, fill: "tonexty", fillcolor: rgba(color, 0.1), hoverinfo: "skip", showlegend: false, meta: "band" });
    }
    // a marker per network while they can be told apart; past that, thousands of SVG markers
    // only cost paint time (the step line shows the same points)
    traces.push({ x, y, mode: x.length <= 300 ? "lines+markers" : "lines", marker: { size: 4 }, line: { shape: "hv", color, width: 2 },
      name: `${plotlyText(s.name)} (n=${s.n}, min ${pct(s.min)}, mean ${pct(s.mean)})`, meta: "edf" });
  }
  traces.push(...parentEdfTraces());  // the refine loop: the parent's EDF, dashed
  renderVsParent(r);
  const marks = referenceMarkers(r);  // reference networks: line, band, label
  traces.push(...marks.traces);
  const norm = state.normalize === "none" ? "" : ` (normalised by ${state.normalize})`;
  Plotly.react("edf", traces, {
    shapes: marks.shapes, annotations: marks.annotations,
    margin: { t: 30, r: 10, b: 45, l: 55 }, title: { text: `error EDF${norm}`, font: { size: 14 } },
    xaxis: { title: { text: "validation error" }, tickformat: ".0%" },
    yaxis: { title: { text: "cumulative prob." }, range: [0, 1.02] },
    legend: { orientation: "h", y: -0.2 }, uirevision: "edf",
  }, PLOT_CFG);
  const body = document.querySelector("#legend tbody");
  body.replaceChildren(...spaces.map((s) => {
    const tr = el("tr"); const sw = el("td", `■ ${s.name}`); sw.style.color = colorOf(s.name);
    tr.append(sw, el("td", fmt(s.n)), el("td", pct(s.min)), el("td", pct(s.mean)),
      el("td", acceptanceOf(s.name)));
    return tr;
  }));
}
function renderBanner(r) {
  const items = r.not_learned || [];
  const box = document.getElementById("banner");
  box.hidden = !items.length;
  box.replaceChildren(...items.map((x) => el("p", `⚠ ${x.text}`)));
}
function acceptanceOf(name) {
  const rec = state.study && state.study.sampling && state.study.sampling[name];
  return rec && rec.acceptance !== undefined ? `${pct(rec.acceptance)} of ${fmt(rec.draws)} draws` : "–";
}
function renderKs(r) {
  const list = r.ks || [];
  const test = list.length ? list[0].test : "two-sample KS";
  const bins = r.bins ? ` within ${r.bins} ${r.normalize} bins` : "";
  const adjusted = list.some((k) => k.adjusted) ? ` (p: residuals of an error-vs-${r.normalize} fit permuted within bins)` : "";
  document.getElementById("ks-test").textContent = `${test}${bins}${adjusted}; q: Benjamini–Hochberg ` +
    `over these ${list.length} pairs. The refinement suggestions between spaces below use these same tests and q.`;
  document.querySelector("#ks tbody").replaceChildren(...list.map((k) => {
    const tr = el("tr", null, k.q !== null && k.q < 0.05 ? "strong" : "");
    // a refused normalised test: no p to trust, and the reason instead (search.analysis.normalize.ks_refusal)
    const p = k.refused ? el("td", "refused", "refused") : el("td", fmt(k.p, 4));
    if (k.refused) { p.title = k.refused; tr.dataset.refused = k.refused; }
    tr.append(el("td", k.a), el("td", k.b), el("td", fmt(k.D, 3)), p, el("td", k.refused ? "–" : fmt(k.q, 4)));
    return tr;
  }));
}
// The bootstrap range of the best networks' values, one per space: a strip of its own at the
// foot of the plot (stacked, never on top of another space's: overlapping shades turned
// brown) in the space's colour, the median a tick across it, named in the legend. The
// points are drawn above the strips (`yDomain`), the x axis below them (`xAxis`).
const STRIP = 0.035;  // height of one space's strip, a fraction of the plot
function bestStrips(entries) {
  const shapes = [], traces = [];
  entries.forEach(([space, best], i) => {
    if (!best || best.lo === null || best.lo === undefined) return;
    const color = colorOf(space), y0 = i * STRIP, y1 = y0 + STRIP * 0.8;
    shapes.push({ type: "rect", xref: "x", yref: "paper", x0: best.lo, x1: best.hi, y0, y1, fillcolor: rgba(color, 0.45), line: { width: 0 } });
    if (best.median !== null && best.median !== undefined) shapes.push({ type: "line", xref: "x", yref: "paper", x0: best.median, x1: best.median, y0, y1, line: { color, width: 2 } });
    traces.push({ x: [null], y: [null], mode: "lines", line: { color: rgba(color, 0.45), width: 8 }, hoverinfo: "skip", meta: "best-strip",
      name: `${plotlyText(space)}: best 95% range (bootstrap), median ${fmt(best.median, 3)}` });
  });
  const bottom = entries.length * STRIP + 0.02;
  return { shapes, traces, yDomain: [Math.min(bottom, 0.5), 1], xAxis: { anchor: "free", position: 0 } };
}
// error against x, one marker trace per space, with each space's bootstrap best-range strip
function scatterWithStrips(bySpace, meta) {
  // thousands of SVG markers per plot stall the page; WebGL draws them at once (a few plots
  // only: browsers keep ~16 WebGL contexts, which is why plots are chosen with the chips)
  const many = bySpace.reduce((n, [, d]) => n + (d.x || []).length, 0) > 1500;
  const traces = bySpace.map(([space, d]) => ({ x: d.x, y: d.error, mode: "markers", type: many ? "scattergl" : "scatter",
    name: plotlyText(space), marker: { size: 5, color: colorOf(space), opacity: 0.6 }, meta }));
  const strips = bestStrips(bySpace.map(([space, d]) => [space, d.best]));
  return { traces: [...traces, ...strips.traces], shapes: strips.shapes, strips };
}
// DDS Fig. 8: e_fit (distance to the nearest RegNet) against error, every network of a space
function renderEfit(r) {
  const fits = Object.entries((r.e_fit || {}).spaces || {});
  const { traces, shapes, strips } = scatterWithStrips(fits, "efit");
  Plotly.react("efit", traces, {
    margin: { t: 10, r: 10, b: 45, l: 55 }, shapes,
    xaxis: { title: { text: "e_fit (mean |log(w_pred / w)| of the nearest RegNet)" }, ...strips.xAxis },
    yaxis: { title: { text: "error" }, tickformat: ".0%", domain: strips.yDomain }, legend: { orientation: "h", y: -0.25 },
    uirevision: "efit",
  }, PLOT_CFG);
}
function renderParams(r) {
  const params = r.params || {};
  const names = Object.keys(params);
  if (state.shown === null && names.length) state.shown = names.filter((p) => DEFAULT_PARAMS.includes(p)).slice(0, 6);
  const chips = document.getElementById("param-chips");
  if (chips.dataset.names !== names.join("|")) {
    chips.dataset.names = names.join("|");
    chips.replaceChildren(...names.map((p) => {
      const b = el("button", p); b.dataset.v = p; b.className = state.shown.includes(p) ? "on" : "";
      b.addEventListener("click", () => {
        state.shown = state.shown.includes(p) ? state.shown.filter((x) => x !== p) : [...state.shown, p];
        b.classList.toggle("on"); renderParams(state.results);
      });
      return b;
    }));
  }
  const box = document.getElementById("params");
  const shown = (state.shown || []).filter((p) => p in params);
  for (const child of [...box.children]) if (!shown.includes(child.dataset.param)) { Plotly.purge(child); child.remove(); }
  for (const p of shown) {
    let div = box.querySelector(`[data-param="${CSS.escape(p)}"]`);
    if (!div) { div = el("div", null, "small-plot"); div.dataset.param = p; box.append(div); }
    const { traces, shapes, strips } = scatterWithStrips(Object.entries(params[p].spaces || {}), "param");
    Plotly.react(div, traces, {
      margin: { t: 28, r: 10, b: 40, l: 50 }, title: { text: plotlyText(p.replace(/^p_/, "")), font: { size: 13 } }, shapes,
      xaxis: { type: params[p].log ? "log" : "linear", ...strips.xAxis }, yaxis: { title: { text: "error" }, tickformat: ".0%", domain: strips.yDomain },
      showlegend: false, uirevision: p,
    }, PLOT_CFG);
  }
}
function renderRank(r) {
  const box = document.getElementById("rank");
  const rc = r.rank_correlation;
  if (!rc || (Array.isArray(rc) && !rc.length)) { box.replaceChildren(el("p", "Needs trials finished at two fidelity levels.", "muted")); return; }
  const rows = Array.isArray(rc) ? rc : Object.entries(rc).map(([k, v]) => ({ pair: k, ...(typeof v === "object" ? v : { rho: v }) }));
  const t = el("table"); const h = el("tr");
  const keys = [...new Set(rows.flatMap((x) => Object.keys(x)))];
  keys.forEach((k) => h.append(el("th", k))); t.append(h);
  rows.forEach((x) => { const tr = el("tr"); keys.forEach((k) => tr.append(el("td", fmt(x[k], 3)))); t.append(tr); });
  box.replaceChildren(t);
}
function renderFit(r) {
  const box = document.getElementById("fit");
  const fits = r.regnet || {};
  const entries = Object.entries(fits).filter(([, v]) => v && typeof v === "object");
  if (!entries.length) box.replaceChildren(el("p", "No fit yet (needs finished trials).", "muted"));
  else {
    // one row per fit: "fit of" (a space, or overall) and the winner it was fitted to; the
    // winner's own `space` column would repeat the first for every row but overall
    const keys = [...new Set(entries.flatMap(([, v]) => Object.keys(v).filter((k) => typeof v[k] !== "object" && k !== "space" && k !== "block")))];
    const t = el("table"); const h = el("tr");
    ["fit of", "winner's space", ...keys].forEach((k) => h.append(el("th", k))); t.append(h);
    for (const [s, v] of entries) {
      const tr = el("tr"); tr.append(el("td", s), el("td", v.space));
      if (v.block && v.block !== "res_bottleneck") {  // a RegNet is made of X blocks
        const td = el("td", `the winner has ${v.block} blocks: not a RegNet family, no fit`, "muted"); td.colSpan = keys.length;
        tr.append(td);
      } else keys.forEach((k) => tr.append(el("td", fmt(v[k], 3))));
      t.append(tr);
    }
    box.replaceChildren(t);
  }
  const list = (r.refinement || []).map((x) => (typeof x === "string" ? { text: x } : x));
  // tested suggestions carry a verdict (Benjamini–Hochberg q < 0.05: better/worse); the
  // untested ones (range too wide, too few networks on one side) are folded away
  const rank = { better: 0, worse: 1, "no detectable difference": 2 };
  const judged = list.filter((x) => x.verdict).sort((a, b) => rank[a.verdict] - rank[b.verdict]);
  const rest = list.filter((x) => !x.verdict);
  const ul = document.getElementById("suggestions");
  if (!judged.length) ul.replaceChildren(el("li", "No tested suggestion yet.", "muted"));
  else ul.replaceChildren(...judged.map((x) => suggestionItem(x, x.verdict in rank && rank[x.verdict] < 2 ? "strong" : "")));
  const more = document.getElementById("more-suggestions");
  more.hidden = rest.length === 0;
  more.querySelector("summary").textContent = `${rest.length} more: best-value ranges and untested constraints`;
  more.querySelector("ul").replaceChildren(...rest.map((x) => suggestionItem(x, "")));
}
// The error-vs-parameter plots (thousands of points each) are drawn once their section is
// near the viewport (watched once the EDF above them has its size), and kept up to date from
// then on: the first screen does not wait for them.
let paramsInView = false;
const paramsObserver = new IntersectionObserver((entries) => {
  if (!entries.some((e) => e.isIntersecting)) return;
  paramsInView = true;
  paramsObserver.disconnect();
  if (state.results) plotlyReady.then(() => renderParams(state.results));
}, { rootMargin: "100px" });
// Plotly (4.6 MB) downloads and parses while the first results are fetched
const plotlyReady = new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = "/vendor/plotly.min.js";
  script.onload = () => { performance.mark("plotly-ready"); resolve(); };
  script.onerror = () => reject(new Error("plotly.min.js failed to load"));
  document.head.append(script);
});
const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
async function render(r) {
  state.results = r;
  await plotlyReady;
  if (state.results !== r) return;
  for (const s of spacesOf(r)) if (!state.spaceOrder.includes(s.name)) state.spaceOrder.push(s.name);
  // the EDFs first: they are what the page is for; the rest follows a frame later
  renderEdf(r); renderReferences(r); renderKs(r); renderBanner(r);
  if (!paramsInView) paramsObserver.observe(document.getElementById("params").parentElement);
  if (!performance.getEntriesByName("edf-plotted").length) performance.mark("edf-plotted");
  const notes = [...(r.warnings || [])];
  if (r.bins) {
    const [lo, hi] = r.complexity_range;
    const chosen = r.bins_auto ? " (chosen from the data)" : "";
    notes.unshift(`${r.bins} equal ${r.normalize} bins${chosen} over [${fmt(lo)}, ${fmt(hi)}]`);
  }
  const note = document.getElementById("note");
  note.textContent = notes.join(" · "); note.className = "muted";
  document.body.dataset.edfN = spacesOf(r).reduce((n, s) => n + (s.n || 0), 0);
  await nextFrame();
  if (state.results !== r) return; // a newer answer arrived meanwhile
  renderRank(r); renderFit(r); renderEfit(r);
  if (paramsInView) renderParams(r);
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  if (!performance.getEntriesByName("first-screen").length) performance.mark("first-screen");
  document.body.dataset.rendered = `${state.fidelity}|${state.normalize}|${state.etag}`;
}

// ---- polling ----
let inFlight = false, askAgain = false;
async function pollResults() {
  if (inFlight) { askAgain = true; return; }  // asked again once the answer in flight is in
  inFlight = true;
  const asked = state.asked;
  try {
    // before the study's levels are known, the server's default level (the lowest) is asked for
    let q = `${state.fidelity === null ? "" : `fidelity=${state.fidelity}&`}normalize=${state.normalize}`;
    if (state.normalize !== "none") q += (state.bins ? `&bins=${state.bins}` : "") + (state.range ? `&range=${state.range}` : "");
    const headers = state.etag ? { "If-None-Match": state.etag } : {};
    const res = await fetch(`/api/studies/${STUDY}/edf?${q}`, { headers, cache: "no-store" });
    if (asked !== state.asked) return;  // the view changed meanwhile: its own request follows
    if (res.status === 200) {
      state.etag = res.headers.get("ETag");
      const body = await res.json();
      if (!performance.getEntriesByName("results-parsed").length) performance.mark("results-parsed");
      await render(body);
    }
    else if (res.status !== 304) {  // e.g. 422: an empty bin, named with its space
      const body = await res.json().catch(() => ({}));
      const note = document.getElementById("note");
      note.textContent = `results: ${body.detail || res.status}`; note.className = "error";
      document.body.dataset.rendered = `${state.fidelity}|${state.normalize}|error`;
    }
  } catch (e) { document.getElementById("note").textContent = `offline? ${e}`; }
  finally {
    inFlight = false;
    if (askAgain) { askAgain = false; pollResults(); }
  }
}
async function pollStudy() {
  try {
    const res = await fetch(`/api/studies/${STUDY}`, { cache: "no-store" });
    if (res.ok) {
      state.study = await res.json(); state.spaceOrder = [...state.study.spaces]; renderProgress(state.study);
      renderLineage(state.study); pollParent();
    }
  } catch (e) { /* the next poll retries */ }
}
document.getElementById("bands").addEventListener("change", (ev) => { state.bands = ev.target.checked; if (state.results) renderEdf(state.results); });
document.getElementById("fidelity").addEventListener("change", (ev) => { state.fidelity = Number(ev.target.value); state.etag = null; state.asked++; pollResults(); });
document.querySelectorAll("#normalize button").forEach((b) => b.addEventListener("click", () => {
  state.normalize = b.dataset.v; state.etag = null; state.asked++;
  document.querySelectorAll("#normalize button").forEach((x) => x.classList.toggle("on", x === b));
  document.getElementById("norm-opts").hidden = state.normalize === "none";
  pollResults();
}));
// NDS normalisation: bins (blank: chosen from the data) over a range (default: the spaces' overlap)
for (const id of ["bins", "range-lo", "range-hi"]) {
  document.getElementById(id).addEventListener("change", () => {
    const bins = Number(document.getElementById("bins").value.trim() || "0");
    const lo = document.getElementById("range-lo").value.trim(), hi = document.getElementById("range-hi").value.trim();
    state.bins = Number.isInteger(bins) && bins >= 1 ? bins : null;
    state.range = lo && hi ? `${encodeURIComponent(lo)},${encodeURIComponent(hi)}` : null;
    state.etag = null; state.asked++; pollResults();
  });
}
(async () => {
  await Promise.all([pollStudy(), pollResults()]); // in parallel: the first plot needs only results
  setInterval(pollResults, 1000); setInterval(pollStudy, 2000);
})();
