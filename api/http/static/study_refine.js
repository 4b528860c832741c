"use strict";
// The study page's refine loop; loaded before study.js, whose helpers (el, state, render)
// it uses when called.
// ---- the refine loop: "try it" on a suggestion, the lineage, the parent's EDF ----
// (POST /api/studies/{id}/refine makes the child study; a child's page draws its parent's
// EDF of the space it refined, dashed, beside its own)
function suggestionItem(x, cls) {
  const li = el("li", null, cls);
  li.append(el("span", x.text || JSON.stringify(x)));
  if (x.id) li.dataset.suggestion = x.id;
  if (x.applies) {
    const b = el("button", "try it", "try-it");
    b.type = "button"; b.dataset.suggestion = x.id;
    b.title = `create a child study: this study's spec with ${x.id} applied`;
    b.addEventListener("click", () => tryIt(x.id, li, b));
    li.append(" ", b);
  } else if (x.why_not) li.title = `cannot be tried: ${x.why_not}`;
  return li;
}
async function tryIt(id, li, button) {
  button.disabled = true; button.textContent = "creating…";
  const body = JSON.stringify({ suggestion: id, fidelity: state.fidelity, normalize: state.normalize });
  const send = (token) => fetch(`/api/studies/${STUDY}/refine`, { method: "POST", body,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) } });
  let res = await send(sessionStorage.getItem("dse-token"));
  if (res.status === 401) {  // the server has DSE_TOKEN set: ask once, keep it for the session
    const token = window.prompt("This server needs its token (DSE_TOKEN) to create studies:");
    if (token) { sessionStorage.setItem("dse-token", token); res = await send(token); }
  }
  const out = await res.json().catch(() => ({}));
  if (res.ok) { window.location = `/studies/${out.id}`; return; }
  button.disabled = false; button.textContent = "try it";
  let msg = li.querySelector(".err");
  if (!msg) { msg = el("span", null, "err"); li.append(" ", msg); }
  msg.textContent = `${res.status}: ${out.detail || res.statusText}`;
}
function renderLineage(study) {
  const box = document.getElementById("lineage");
  const chain = [...(study.lineage || []), { id: study.id, name: study.name }];
  const key = JSON.stringify([chain, study.suggestion, study.children]);
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  box.hidden = chain.length < 2 && !(study.children || []).length;
  if (chain.length > 1) {
    const crumbs = el("div", null, "crumbs"); crumbs.append(el("span", "lineage: ", "muted"));
    chain.forEach((s, i) => {
      if (i) crumbs.append(" → ");
      if (s.id === study.id) crumbs.append(el("b", `${s.id}: ${s.name}`));
      else { const a = el("a", `${s.id}: ${s.name}`); a.href = `/studies/${s.id}`; crumbs.append(a); }
    });
    box.append(crumbs);
  }
  if (study.suggestion) {
    box.append(el("p", `tries ${study.suggestion.id} on ${study.suggestion.space} of study ` +
      `${study.parent ? study.parent.id : "?"}: ${study.suggestion.text}`, "muted"));
    const vs = el("p"); vs.id = "vs-parent"; vs.hidden = true; box.append(vs);
    if (state.results) renderVsParent(state.results);
  }
  if ((study.children || []).length) {
    const kids = el("div", null, "children"); kids.append(el("span", "refined by: ", "muted"));
    study.children.forEach((c, i) => {
      if (i) kids.append(", ");
      const a = el("a", `${c.id}: ${c.name}`); a.href = `/studies/${c.id}`; a.title = c.suggestion || "";
      kids.append(a, el("span", ` (${c.status})`, "muted"));
    });
    box.append(kids);
  }
}
// the parent's results at this page's fidelity and normalisation, polled with its own ETag
const parentState = { etag: null, key: null, results: null, busy: false };
async function pollParent() {
  const study = state.study;
  if (!study || !study.parent || !study.suggestion || parentState.busy) return;
  const key = `${state.fidelity}|${state.normalize}`;
  if (key !== parentState.key) parentState.etag = null;
  parentState.busy = true;
  try {
    let q = `${state.fidelity === null ? "" : `fidelity=${state.fidelity}&`}normalize=${state.normalize}`;
    if (state.normalize !== "none") q += `&bins=${state.bins}`;
    const headers = parentState.etag ? { "If-None-Match": parentState.etag } : {};
    const res = await fetch(`/api/studies/${study.parent.id}/edf?${q}`, { headers, cache: "no-store" });
    if (res.status === 200) {
      parentState.etag = res.headers.get("ETag"); parentState.key = key;
      parentState.results = await res.json();
      if (state.results) { await plotlyReady; renderEdf(state.results); }
    }
  } catch (e) { /* the next poll retries */ }
  finally { parentState.busy = false; }
}
function parentEdfTraces() {
  const study = state.study, r = parentState.results;
  if (!study || !study.suggestion || !r || !r.spaces) return [];
  const s = r.spaces[study.suggestion.space];
  if (!s || !s.edf || !s.edf.x.length) return [];
  const color = colorOf(study.suggestion.refined);
  return [{ x: s.edf.x, y: s.edf.F, mode: "lines", line: { shape: "hv", color, width: 2, dash: "dash" },
    name: `parent ${study.parent.id}: ${plotlyText(study.suggestion.space)} (n=${s.n}, min ${pct(s.min)}, mean ${pct(s.mean)})`,
    meta: "parent-edf" }];
}
// one line under the lineage: the refined space against the parent's original one, with the
// server's test of the two (results.vs_parent: KS, or the within-bin permutation test when
// normalised, its q over the study's KS table, where it is the last row)
function renderVsParent(r) {
  const box = document.getElementById("vs-parent");
  const study = state.study, p = parentState.results;
  const mine = study && study.suggestion && r && r.spaces && r.spaces[study.suggestion.refined];
  const theirs = p && p.spaces && study.suggestion && p.spaces[study.suggestion.space];
  if (!box || !mine || !theirs || !mine.n || !theirs.n) { if (box) box.hidden = true; return; }
  const t = r.vs_parent;
  const test = t ? `; ${t.test}: D = ${fmt(t.D, 3)}, p = ${fmt(t.p, 4)}, q = ${fmt(t.q, 4)}` +
    (t.q !== null && t.q < 0.05 ? " (a difference)" : " (no detectable difference)") : "; no test yet";
  box.textContent = `${study.suggestion.refined}: mean ${pct(mine.mean)}, min ${pct(mine.min)} (n=${mine.n})` +
    ` vs the parent's ${study.suggestion.space}: mean ${pct(theirs.mean)}, min ${pct(theirs.min)} (n=${theirs.n})` + test;
  box.hidden = false;
}
