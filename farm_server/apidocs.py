"""``/docs``: the API reference as one self-contained page (no CDN, works offline).

FastAPI's Swagger UI and ReDoc pages load their scripts and styles from a CDN; a farm
usually runs on a CI host or in a private network. This page fetches ``/openapi.json``
from the farm itself and lists every route with its summary, parameters and body schema.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

__all__ = ["PAGE", "add_docs_page"]

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pytest-shadowfarm farm API</title>
<style>
body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 60em; }
h2 { font-size: 1.05em; margin: 1.5em 0 .3em; font-family: monospace; }
.m { display: inline-block; min-width: 4em; color: #fff; background: #555; padding: 0 .4em; }
.get { background: #2a7; } .post { background: #27a; } .put { background: #a72; }
pre { background: #f4f4f4; padding: .6em; overflow-x: auto; }
</style></head><body>
<h1>pytest-shadowfarm farm API</h1>
<p id="about">Loading <a href="/openapi.json">/openapi.json</a> …</p>
<div id="routes"></div>
<script>
fetch("/openapi.json").then(r => r.json()).then(spec => {
  document.getElementById("about").textContent = spec.info.description || "";
  const out = document.getElementById("routes");
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const h = document.createElement("h2");
      const m = document.createElement("span");
      m.className = "m " + method; m.textContent = method.toUpperCase();
      h.append(m, " " + path); out.append(h);
      const p = document.createElement("p"); p.textContent = op.summary || ""; out.append(p);
      const detail = {parameters: op.parameters, body: op.requestBody};
      if (op.parameters || op.requestBody) {
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(detail, null, 2); out.append(pre);
      }
    }
  }
  const s = document.createElement("h2"); s.textContent = "schemas"; out.append(s);
  const pre = document.createElement("pre");
  pre.textContent = JSON.stringify((spec.components || {}).schemas || {}, null, 2);
  out.append(pre);
});
</script></body></html>
"""


def add_docs_page(app: FastAPI) -> None:
    """Serve :data:`PAGE` at ``/docs`` (left out of the OpenAPI document itself)."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(PAGE)
