// The study listing (refreshed every few seconds) and the study creation form: presets, overrides,
// dataset, samples, fidelities, bounds and recipe build one spec, previewed as the JSON that is
// posted; a debounced POST /api/studies/estimate shows trials and time before submitting.
"use strict";
const EXAMPLE = `name: digits-anynetx
dataset: {name: digits, resolution: 16}
spaces:
  - {preset: AnyNetX_A, stem: {type: cifar, width: 16}, stages: 3, depth: [1, 2], width: [8, 64]}
  - {preset: AnyNetX_E, stem: {type: cifar, width: 16}, stages: 3, depth: [1, 2], width: [8, 64]}
samples: 12
fidelities: [2]
`;
// small-image overrides the form starts with: the presets are ImageNet-sized (224 px)
const SMALL = '{"stem": {"type": "cifar", "width": 16}, "stages": 3, "depth": [1, 2], "width": [8, 64]}';
const START = { AnyNetX_A: SMALL, AnyNetX_E: SMALL };
const $ = (id) => document.getElementById(id);

function cell(text) { const td = document.createElement("td"); td.textContent = text; return td; }

async function refresh() {
  const res = await fetch("/api/studies");
  if (!res.ok) return;
  const studies = await res.json();
  const body = document.querySelector("#studies tbody");
  body.replaceChildren();
  for (const s of studies) {
    const tr = document.createElement("tr");
    const a = document.createElement("a");
    a.href = `/studies/${s.id}`; a.textContent = s.id;
    const idCell = document.createElement("td"); idCell.append(a);
    const st = document.createElement("span"); st.className = `status ${s.status}`; st.textContent = s.status;
    const stCell = document.createElement("td"); stCell.append(st);
    tr.append(idCell, cell(s.name), stCell, cell(s.spaces.join(", ")), cell(s.samples),
      cell(s.fidelities.join(", ")), cell(s.created ? String(s.created).replace("T", " ").slice(0, 19) : ""));
    body.append(tr);
  }
  $("empty").hidden = studies.length > 0;
}

// --- building the spec ---------------------------------------------------------------------
const SUFFIX = { k: 1e3, K: 1e3, M: 1e6, G: 1e9 };

// A typed value as JSON: a number when it reads as one (1e7, 20M), else the text itself, so the
// API's answer names the field and says what it expected.
function value(text) {
  const t = text.trim();
  if (t === "") return undefined;
  const m = /^([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([kKMG]?)$/.exec(t);
  if (m && !Number.isNaN(Number(m[1]))) return Number(m[1]) * (SUFFIX[m[2]] || 1);
  return t;
}

function put(obj, key, v) { if (v !== undefined) obj[key] = v; }

function checkedPresets() {
  return [...document.querySelectorAll("#presets input[type=checkbox]:checked")].map((c) => c.value);
}

function buildSpec() {
  const spec = { name: $("f-name").value };
  const dataset = { name: $("f-dataset").value || "digits" };
  put(dataset, "resolution", value($("f-resolution").value));
  put(dataset, "num_classes", value($("f-classes").value));
  put(dataset, "train_size", value($("f-train-size").value));
  put(dataset, "val_size", value($("f-val-size").value));
  spec.dataset = dataset;
  spec.spaces = checkedPresets().map((name) => {
    const box = document.querySelector(`#overrides textarea[data-preset="${CSS.escape(name)}"]`);
    const text = box ? box.value.trim() : "";
    if (!text) return { preset: name };
    let extra;
    try { extra = JSON.parse(text); } catch (e) { extra = { overrides: text }; }
    // not an object: sent as it is inside the space, so the API names spaces.i and the key
    return (extra && typeof extra === "object" && !Array.isArray(extra))
      ? { preset: name, ...extra } : { preset: name, overrides: extra };
  });
  put(spec, "samples", value($("f-samples").value));
  const fid = $("f-fidelities").value.trim();
  if (fid) spec.fidelities = fid.split(/[\s,]+/).filter(Boolean).map(value);
  put(spec, "promote", value($("f-promote").value));
  const complexity = {};
  for (const key of ["flops", "params"]) {
    const lo = value($(`f-${key}-lo`).value), hi = value($(`f-${key}-hi`).value);
    if (hi !== undefined) complexity[key] = [lo === undefined ? 0 : lo, hi];
    else if (lo !== undefined) complexity[key] = [lo];  // the API says the upper bound is missing
  }
  if (Object.keys(complexity).length) spec.complexity = complexity;
  const recipe = {};
  for (const el of document.querySelectorAll("[data-recipe]")) {
    const raw = el.value;
    if (el.id === "r-flip") put(recipe, "flip", raw === "" ? undefined : raw === "true");
    else if (el.id === "r-precision") put(recipe, "precision", raw || undefined);
    else put(recipe, el.dataset.recipe, value(raw));
  }
  if (Object.keys(recipe).length) spec.recipe = recipe;
  put(spec, "seed", value($("f-seed").value));
  return spec;
}

// --- the preset catalogue -------------------------------------------------------------------
function rangeText(r) {
  const one = (d) => (d.values ? `{${d.values.join(", ")}}` : `${d.lo}–${d.hi}`);
  return Array.isArray(r) ? r.map(one).join(" | ") : one(r);
}

const PRESETS = new Map();  // name → the catalogue entry (GET /api/presets)

function rangesText(p) {
  return Object.entries(p.parameters).map(([k, r]) => `${k} ${rangeText(r)}`).join("; ");
}

function renderPresets(presets) {
  for (const p of presets) PRESETS.set(p.name, p);
  const box = $("presets");
  box.replaceChildren();
  const families = new Map();
  for (const p of presets) {
    if (!families.has(p.family)) families.set(p.family, []);
    families.get(p.family).push(p);
  }
  for (const [family, items] of families) {
    const group = document.createElement("fieldset");
    group.className = "family";
    group.dataset.family = family;
    const legend = document.createElement("legend");
    legend.textContent = family;
    group.append(legend);
    for (const p of items) {
      const label = document.createElement("label");
      const ranges = rangesText(p);
      label.title = `${p.description}\n${p.block}, ${p.stages ?? "?"} stages, stem ${p.stem.type} ${p.stem.width}, `
        + `${p.resolution} px, ${p.num_classes} classes\n${ranges}`;
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = p.name; box.checked = p.name in START;
      box.addEventListener("change", () => { renderOverrides(); changed(); });
      label.append(box, ` ${p.name}`);
      group.append(label);
    }
    box.append(group);
  }
  renderOverrides();
}

const overrideText = {};  // kept while a preset is unchecked and checked again

function renderOverrides() {
  const box = $("overrides");
  for (const t of box.querySelectorAll("textarea")) overrideText[t.dataset.preset] = t.value;
  box.replaceChildren();
  checkedPresets().forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "override";
    const label = document.createElement("label");
    label.textContent = `${name} (spaces.${i})`;
    const area = document.createElement("textarea");
    area.dataset.preset = name;
    area.dataset.field = `spaces.${i}`;
    area.spellcheck = false;
    area.rows = 2;
    area.placeholder = '{"stages": 3, "depth": [1, 4]}  (empty: the preset as it is)';
    area.value = overrideText[name] ?? START[name] ?? "";
    area.addEventListener("input", changed);
    const p = PRESETS.get(name);
    const hint = document.createElement("div");
    hint.className = "muted small preset-ranges";
    if (p) {
      hint.textContent = `preset: ${p.block}, ${p.stages ?? "?"} stages, stem ${p.stem.type} ${p.stem.width}`
        + `${p.se_ratio ? `, SE ${p.se_ratio}` : ""}; ${rangesText(p)}`
        + (p.constraints.length ? `; ${p.constraints.map((c) => (typeof c === "string" ? c : JSON.stringify(c))).join(", ")}` : "");
    }
    row.append(label, area, hint);
    box.append(row);
  });
  if (!box.children.length) box.textContent = "Pick at least one design space above.";
}

// --- defaults from the schema and the estimate -----------------------------------------------
async function loadSchema() {
  const res = await fetch("/openapi.json");
  if (!res.ok) return;
  const schemas = (await res.json()).components.schemas;
  const recipe = schemas.Recipe.properties;
  for (const el of document.querySelectorAll("[data-recipe]")) {
    const prop = recipe[el.dataset.recipe];
    if (!prop) continue;
    el.title = prop.description || prop.title;
    if (el.tagName === "INPUT" && prop.default !== null && prop.default !== undefined) el.placeholder = String(prop.default);
  }
  const precision = recipe.precision;
  for (const v of precision.enum || []) {
    const o = document.createElement("option"); o.value = v; o.textContent = v; $("r-precision").append(o);
  }
  $("r-precision").options[0].textContent = `default (${precision.default})`;
  const names = schemas.DatasetSpec.properties.name;
  for (const v of names.enum) {
    const o = document.createElement("option"); o.value = v; o.textContent = v; $("f-dataset").append(o);
  }
  $("f-dataset").value = names.default;
  $("f-promote").placeholder = String(Math.round(schemas.StudySpec.properties.promote.default * 1000) / 1000);
  $("f-seed").placeholder = String(schemas.StudySpec.properties.seed.default);
}

function showDefaults(est) {
  // the defaults this dataset resolves to, as placeholders of the fields left empty
  const d = est.dataset;
  $("f-resolution").placeholder = d.resolution ? `${d.resolution} (native)` : "native";
  $("f-classes").placeholder = d.num_classes ? String(d.num_classes) : "";
  $("f-train-size").placeholder = d.train_size != null ? String(d.train_size) : "all";
  $("f-val-size").placeholder = d.val_size != null ? String(d.val_size) : "default";
  if (!est.recipe) return;
  for (const key of ["batch_size", "lr", "warmup_epochs", "crop_padding"]) {
    $(`r-${key}`).placeholder = `${est.recipe[key]} (default)`;
  }
  $("r-flip").options[0].textContent = `default (${est.recipe.flip ? "on" : "off"})`;
}

// --- errors next to the fields ---------------------------------------------------------------
function clearErrors(which) {
  for (const el of document.querySelectorAll(`[data-from="${which}"]`)) el.remove();
  for (const el of document.querySelectorAll(`[data-invalid="${which}"]`)) el.removeAttribute("data-invalid");
}

// The input a field path belongs to: the one whose data-field is its longest prefix.
function inputFor(field) {
  let best = null, bestLen = -1;
  for (const el of document.querySelectorAll("[data-field]")) {
    const f = el.dataset.field;
    if ((field === f || field.startsWith(`${f}.`)) && f.length > bestLen) { best = el; bestLen = f.length; }
  }
  return best;
}

function showErrors(items, which) {
  // one spec, one set of errors: the submit's replace the estimate's (the same 422s)
  clearErrors(which);
  if (which === "submit") clearErrors("estimate");
  const list = $("form-errors");
  if (which === "submit") list.replaceChildren();
  const seen = new Set();
  for (const { field, reason } of items) {
    const key = `${field}\u0000${reason}`;
    if (seen.has(key)) continue;  // each message once
    seen.add(key);
    const el = inputFor(field);
    if (el) {
      const note = document.createElement("span");
      note.className = "field-error err";
      note.dataset.from = which;
      note.dataset.for = field;
      note.textContent = `${field}: ${reason}`;
      el.dataset.invalid = which;
      (el.closest("label") || el).after(note);
    }
    if (!el) {  // at its field when the form has one, else in the list: once either way
      const li = document.createElement("li");
      li.dataset.from = which;
      li.textContent = `${field}: ${reason}`;
      list.append(li);
    }
  }
}

function errorItems(status, body) {
  if (body && Array.isArray(body.errors)) return body.errors;
  return [{ field: "request", reason: `${status} ${(body && body.detail) || ""}`.trim() }];
}

// --- the estimate ----------------------------------------------------------------------------
function duration(s) {
  if (s < 90) return `${Math.ceil(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}
const fmt = (n) => (n == null ? "?" : Number(n).toLocaleString("en-US"));
const flopsText = (f) => (f >= 1e9 ? `${(f / 1e9).toFixed(2)} GF` : `${(f / 1e6).toFixed(2)} MF`);

function renderEstimate(est) {
  const panel = $("estimate");
  panel.dataset.trials = est.trials;
  panel.dataset.seconds = est.seconds ?? "";
  panel.dataset.source = est.rate ? est.rate.source : "";
  const time = est.seconds == null ? "unknown" : `≈ ${duration(est.seconds)}`;
  $("est-summary").textContent = `${fmt(est.trials)} trials, ${fmt(est.train_images)} training images, `
    + `${time} on ${est.workers} worker${est.workers > 1 ? "s" : ""}`;
  const body = document.querySelector("#est-levels tbody");
  body.replaceChildren();
  for (const l of est.levels) {
    const tr = document.createElement("tr");
    tr.append(cell(l.level), cell(l.epochs), cell(l.trials_per_space), cell(l.trials),
      cell(fmt(l.train_images)), cell(l.seconds == null ? "?" : duration(l.seconds)));
    body.append(tr);
  }
  const spaces = $("est-spaces");
  spaces.replaceChildren();
  for (const s of est.spaces) {
    const li = document.createElement("li");
    li.textContent = `${s.name}: ${flopsText(s.flops)} (${s.flops_note})`
      + (s.seconds == null ? "" : `, ${duration(s.seconds)}`);
    spaces.append(li);
  }
  $("est-source").textContent = [est.rate ? `Speed: ${est.rate.note}.` : "", est.note || ""].join(" ").trim();
  showDefaults(est);
}

// An estimate that no longer describes the spec (it changed, or it has errors) is not shown.
function clearEstimate() {
  const panel = $("estimate");
  for (const key of ["trials", "seconds", "source"]) delete panel.dataset[key];
  $("est-summary").textContent = "";
  document.querySelector("#est-levels tbody").replaceChildren();
  $("est-spaces").replaceChildren();
  $("est-source").textContent = "";
}

function authHeaders(headers) {
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

let seq = 0, timer = null;

async function runEstimate() {
  const mine = ++seq;
  const body = $("spec-preview").textContent;
  $("est-state").textContent = "(estimating…)";
  let res, answer;
  try {
    res = await fetch(`/api/studies/estimate?workers=${encodeURIComponent($("f-workers").value || 1)}`,
      { method: "POST", headers: authHeaders({ "Content-Type": "application/json" }), body });
    answer = await res.json().catch(() => ({}));
  } catch (e) {
    if (mine === seq) { clearEstimate(); $("est-state").textContent = `(failed: ${e})`; }
    return;
  }
  if (mine !== seq) return;  // a newer spec is being estimated
  if (res.ok) {
    clearErrors("estimate");
    renderEstimate(answer);
    $("est-state").textContent = "";
    $("estimate").dataset.state = "ok";
    return;
  }
  clearEstimate();
  $("estimate").dataset.state = "error";
  if (res.status === 401) {  // not the spec's fault: the server wants its token
    clearErrors("estimate");
    $("est-state").textContent = "(the server needs its token: fill in the token field)";
    return;
  }
  showErrors(errorItems(res.status, answer), "estimate");
  $("est-state").textContent = "(the spec has errors: see the fields)";
}

function changed() {
  const text = JSON.stringify(buildSpec(), null, 2);
  if (text !== $("spec-preview").textContent) {  // a new spec: the last POST's errors are stale
    clearErrors("submit");
    $("form-errors").replaceChildren();
    clearEstimate();  // and so is the last estimate
  }
  $("spec-preview").textContent = text;
  $("estimate").dataset.state = "pending";
  clearTimeout(timer);
  timer = setTimeout(runEstimate, 400);
}

// --- submitting ------------------------------------------------------------------------------
async function submitForm(ev) {
  ev.preventDefault();
  changed();  // the preview is what is posted
  clearTimeout(timer);
  const msg = $("msg");
  const headers = authHeaders({ "Content-Type": "application/json" });
  const check = $("f-check").checked;
  msg.className = "";
  msg.textContent = check ? "checking the recipe, then sampling every network…" : "creating (every network is sampled now)…";
  $("f-submit").disabled = true;
  try {
    const res = await fetch(`/api/studies${check ? "?check=true" : ""}`,
      { method: "POST", headers, body: $("spec-preview").textContent });
    const body = await res.json().catch(() => ({}));
    // 201: created; 202: still being created, and its page shows the progress
    if (res.status === 201 || res.status === 202) { window.location = `/studies/${body.id}`; return; }
    showErrors(errorItems(res.status, body), "submit");
    msg.className = "err";
    msg.textContent = `${res.status}: not created (see the errors at the fields)`;
  } finally {
    $("f-submit").disabled = false;
  }
}

async function pasteSubmit(ev) {
  ev.preventDefault();
  const msg = $("paste-msg");
  const headers = authHeaders({ "Content-Type": $("fmt").value });
  msg.className = ""; msg.textContent = "creating (every network is sampled now)…";
  const res = await fetch("/api/studies", { method: "POST", headers, body: $("spec").value });
  const body = await res.json().catch(() => ({}));
  if (res.status === 201 || res.status === 202) { window.location = `/studies/${body.id}`; return; }
  msg.className = "err"; msg.textContent = `${res.status}: ${body.detail || res.statusText}`;
}

async function init() {
  $("spec").value = EXAMPLE;
  document.querySelectorAll(".origin").forEach((e) => { e.textContent = location.origin; });
  $("create").addEventListener("submit", pasteSubmit);
  $("study-form").addEventListener("submit", submitForm);
  $("study-form").addEventListener("input", (ev) => {
    if (ev.target.id !== "token") { changed(); return; }
    clearTimeout(timer);  // a new token: the same spec, estimated again
    timer = setTimeout(runEstimate, 400);
  });
  $("study-form").addEventListener("change", (ev) => { if (ev.target.tagName === "SELECT") changed(); });
  await loadSchema().catch(() => {});
  const res = await fetch("/api/presets");
  if (res.ok) renderPresets(await res.json());
  else $("presets").textContent = `presets: ${res.status}`;
  changed();
}

init();
refresh();
setInterval(refresh, 3000);
