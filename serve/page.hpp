// The page of GET / (one self-contained file: no external scripts, styles or fonts): type a text,
// see the classification probabilities (POST /predict) or the fill-mask answers (POST
// /fill-mask), and the attention map of a chosen layer and head (POST /attention) drawn on a
// canvas. With --api-key-file the page asks for the key and sends it as a Bearer token.
// Element ids (text, key, classify, fillmask, attn, layer, head, result, map, status) are what
// the browser test drives; keep them.
#pragma once

namespace linformer::serve {

inline constexpr const char* kPageHtml = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>linformer serve</title>
<style>
 body { font: 15px/1.4 system-ui, sans-serif; max-width: 980px; margin: 1.5em auto; padding: 0 1em; color: #222; }
 textarea { width: 100%; height: 6em; font: inherit; }
 button { margin: .3em .4em .3em 0; padding: .35em .9em; }
 #info { color: #555; font-size: 13px; }
 table { border-collapse: collapse; margin-top: .5em; }
 td { padding: 2px 8px; }
 .bar { background: #4a7bd0; height: 12px; }
 #status { color: #a00; min-height: 1.3em; }
 canvas { margin-top: .8em; border: 1px solid #ccc; }
</style>
</head>
<body>
<h1>linformer serve</h1>
<div id="info">loading model information&hellip;</div>
<p><label>API key (if the server has one): <input id="key" type="password" size="30"></label></p>
<textarea id="text" placeholder="Type or paste a text; put &lt;mask&gt; where a word is missing for Fill mask">the cat &lt;mask&gt; the bird .</textarea>
<div>
 <button id="classify">Classify</button>
 <button id="fillmask">Fill mask</button>
 <label>layer <select id="layer"></select></label>
 <label>head <select id="head"></select></label>
 <button id="attn">Attention map</button>
</div>
<div id="status"></div>
<div id="result"></div>
<canvas id="map" width="10" height="10" style="display:none"></canvas>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]); }
async function call(method, path, body) {
  const headers = {"Content-Type": "application/json"};
  if ($("key").value) headers["Authorization"] = "Bearer " + $("key").value;
  const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  const j = await r.json();
  if (!r.ok) throw new Error(r.status + " " + (j.error_type || "") + ": " + (j.error || ""));
  return j;
}
function bars(rows) {  // rows: [[label, probability]]
  return "<table>" + rows.map(([l, p]) =>
    `<tr><td>${esc(l)}</td><td>${(100 * p).toFixed(2)}%</td><td><div class="bar" style="width:${Math.round(300 * p)}px"></div></td></tr>`
  ).join("") + "</table>";
}
async function run(what) {
  $("status").textContent = "";
  try { await what(); } catch (e) { $("status").textContent = e.message; }
}
async function loadInfo() {
  try {
    const i = await call("GET", "/info");
    $("info").textContent = `${i.model} - attention ${i.attention}, max_len ${i.max_len}, ${i.config.n_layers} layers, ` +
      `${i.config.n_heads} heads` + (i.labels.length ? `, labels: ${i.labels.join(", ")}` : "") + ` - linformer ${i.version}`;
    $("layer").innerHTML = [...Array(i.config.n_layers).keys()].map((l) => `<option>${l}</option>`).join("");
    $("head").innerHTML = [...Array(i.config.n_heads).keys()].map((h) => `<option>${h}</option>`).join("");
    $("classify").disabled = i.labels.length === 0;
    $("info").dataset.ready = "1";
  } catch (e) { $("info").textContent = "model information: " + e.message; }
}
$("classify").onclick = () => run(async () => {
  const r = await call("POST", "/predict", {inputs: $("text").value, truncate: true});
  const rows = Object.entries(r.probs).sort((a, b) => b[1] - a[1]);
  $("result").innerHTML = `<p>label: <b id="label">${esc(r.label)}</b></p>` + bars(rows);
});
$("fillmask").onclick = () => run(async () => {
  const r = await call("POST", "/fill-mask", {inputs: $("text").value, top_k: 5});
  $("result").innerHTML = r.masks.map((m, i) => `<p>&lt;mask&gt; #${i + 1}</p>` +
    bars(m.candidates.map((c) => [c.token, c.score]))).join("");
});
$("attn").onclick = () => run(async () => {
  const r = await call("POST", "/attention", {inputs: $("text").value, layer: +$("layer").value, head: +$("head").value});
  const cell = Math.max(4, Math.min(24, Math.floor(640 / Math.max(r.n, r.cols)))), pad = 90;
  const c = $("map"), g = c.getContext("2d");
  c.width = pad + r.cols * cell + 10; c.height = pad + r.n * cell + 10; c.style.display = "block";
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  // Colours span the map's own range (Linformer's rows over k projected keys are often nearly
  // uniform: scaled from 0 they would all look the same).
  let max = 0, min = 1; for (const row of r.probs) for (const p of row) { max = Math.max(max, p); min = Math.min(min, p); }
  r.probs.forEach((row, t) => row.forEach((p, k) => {
    const v = Math.round(20 + 235 * (1 - (p - min) / ((max - min) || 1)));
    g.fillStyle = `rgb(${v},${v},255)`; g.fillRect(pad + k * cell, pad + t * cell, cell, cell);
  }));
  g.fillStyle = "#222"; g.font = Math.min(12, cell) + "px sans-serif"; g.textAlign = "right";
  r.tokens.forEach((tok, t) => g.fillText(tok, pad - 4, pad + t * cell + cell * 0.8));
  g.save(); g.translate(pad, pad - 4); g.rotate(-Math.PI / 2); g.textAlign = "left";
  for (let k = 0; k < r.cols; ++k)
    g.fillText(r.cols === r.n ? r.tokens[k] : "k" + k, 0, k * cell + cell * 0.8);
  g.restore();
  $("result").innerHTML = `<p id="attn-caption">layer ${r.layer}, head ${r.head}: ${r.n} queries x ${r.cols} ` +
    (r.cols === r.n ? "keys" : "projected keys (Linformer)") +
    `, darker = more attention (${(100 * min).toPrecision(3)}% to ${(100 * max).toPrecision(3)}%)</p>`;
});
$("key").onchange = loadInfo;  // a server with a key answers /info once the key is typed
loadInfo();
</script>
</body>
</html>
)PAGE";

}  // namespace linformer::serve
