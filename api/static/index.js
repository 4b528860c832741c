// The study listing: refreshed every few seconds; the form posts a spec as JSON or YAML.
"use strict";
const EXAMPLE = `name: digits-anynetx
dataset: {name: digits, resolution: 16}
spaces:
  - {preset: AnyNetX_A, stem: {type: cifar, width: 16}, stages: 3, depth: [1, 2], width: [8, 64], resolution: 16, num_classes: 10}
  - {preset: AnyNetX_E, stem: {type: cifar, width: 16}, stages: 3, depth: [1, 2], width: [8, 64], resolution: 16, num_classes: 10}
samples: 12
fidelities: [2]
`;

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
  document.getElementById("empty").hidden = studies.length > 0;
}

document.getElementById("spec").value = EXAMPLE;
document.querySelectorAll(".origin").forEach((e) => { e.textContent = location.origin; });
document.getElementById("create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const msg = document.getElementById("msg");
  const headers = { "Content-Type": document.getElementById("fmt").value };
  const token = document.getElementById("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  msg.className = ""; msg.textContent = "creating (every network is sampled now)…";
  const res = await fetch("/api/studies", { method: "POST", headers, body: document.getElementById("spec").value });
  const body = await res.json().catch(() => ({}));
  // 201: created; 202: still being created, and its page shows the progress
  if (res.status === 201 || res.status === 202) { window.location = `/studies/${body.id}`; return; }
  msg.className = "err"; msg.textContent = `${res.status}: ${body.detail || res.statusText}`;
});
refresh();
setInterval(refresh, 3000);
