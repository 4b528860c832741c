// A small offline reader of the app's OpenAPI document: operations, parameters, bodies, responses.
"use strict";
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function refName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.type === "array") return `array of ${refName(schema.items)}`;
  if (schema.anyOf) return schema.anyOf.map(refName).join(" | ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  return schema.type || "";
}
(async () => {
  const api = await (await fetch("/openapi.json")).json();
  const main = document.getElementById("ops");
  for (const [path, item] of Object.entries(api.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const sec = el("section");
      sec.append(el("h2", `${method.toUpperCase()} ${path}`));
      if (op.summary || op.description) sec.append(el("p", op.description || op.summary, "muted"));
      if (op.parameters && op.parameters.length) {
        const t = el("table"); t.append(el("tr")); t.firstChild.append(el("th", "parameter"), el("th", "in"), el("th", "type"), el("th", "description"));
        for (const p of op.parameters) { const r = el("tr"); r.append(el("td", p.name + (p.required ? " *" : "")), el("td", p.in), el("td", refName(p.schema)), el("td", p.description || (p.schema && p.schema.description) || "")); t.append(r); }
        sec.append(t);
      }
      if (op.requestBody) sec.append(el("p", `body: ${Object.entries(op.requestBody.content).map(([k, v]) => `${k} (${refName(v.schema)})`).join(", ")}`));
      const rs = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description || ""} ${r.content && r.content["application/json"] ? refName(r.content["application/json"].schema) : ""}`);
      sec.append(el("p", `responses: ${rs.join(" · ")}`, "muted"));
      main.append(sec);
    }
  }
  const schemas = (api.components && api.components.schemas) || {};
  const sec = el("section"); sec.append(el("h2", "Schemas"));
  for (const [name, s] of Object.entries(schemas)) {
    const d = el("details"); d.append(el("summary", name)); d.append(el("pre", JSON.stringify(s, null, 2))); sec.append(d);
  }
  main.append(sec);
})();
