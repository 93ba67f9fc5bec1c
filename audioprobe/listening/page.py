"""The listening page: one HTML document with its CSS and script inline, so it works offline."""

PAGE = r"""<!DOCTYPE html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1">
<title>audioprobe · listening study</title><link rel=icon href="data:,">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f6f3;color:#222}
header{background:#23364d;color:#fff;padding:.8em 1.2em}header h1{font-size:1.15em;margin:0}
header p{margin:.2em 0 0;opacity:.8;font-size:.9em}
main{max-width:760px;margin:1.2em auto;padding:0 1em}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em 1.2em;margin-bottom:1em}
#progress{height:8px;background:#e3e3de;border-radius:4px;overflow:hidden}
#bar{height:100%;width:0;background:#3b6ea8;transition:width .2s}
.players{display:flex;gap:1em;flex-wrap:wrap}.players>div{flex:1;min-width:240px}
.players h3{margin:.2em 0 .4em;font-size:1em}audio{width:100%}
button{font:inherit;padding:.45em .9em;margin:.2em .3em .2em 0;border:1px solid #aab;border-radius:6px;
background:#fff;cursor:pointer}button.on{background:#3b6ea8;color:#fff;border-color:#3b6ea8}
button:disabled{opacity:.5;cursor:default}#submit{background:#23364d;color:#fff}
kbd{font:12px monospace;border:1px solid #bbb;border-radius:3px;padding:0 .3em;background:#f3f3f3;color:#333}
.note{color:#666;font-size:.88em}#msg{min-height:1.3em;color:#a33}[hidden]{display:none!important}
</style></head><body>
<header><h1>audioprobe · listening study</h1><p id=run>loading…</p></header>
<main>
<div class=card id=who><label>Rater id <input id=rater maxlength=40 placeholder="e.g. ana"></label>
<button id=start>Start</button><p class=note>Letters, digits, <kbd>.</kbd> <kbd>_</kbd> <kbd>-</kbd>.
Your place is kept: close the tab and come back with the same id.</p></div>
<div class=card id=study hidden>
<div id=progress><div id=bar></div></div><p class=note><span id=count></span> · rater <b id=me></b></p>
<p id=prompt></p>
<div class=players>
<div><h3>Generated</h3><button id=play-gen>▶ play <kbd>G</kbd></button><audio id=gen controls preload=auto></audio></div>
<div id=refbox><h3>Reference <span id=cls></span></h3><button id=play-ref>▶ play <kbd>R</kbd></button>
<audio id=ref controls preload=auto></audio></div>
</div>
<div id=labelq><p><b>Which label fits the generated sound?</b></p><div id=labels></div>
<p class=note>The reference of the target class is played after you choose; the label is then fixed.</p></div>
<div id=simq><p><b id=simtext>How similar are they?</b></p>
<button data-sim=highly>highly similar <kbd>1</kbd></button><button data-sim=moderately>moderately similar <kbd>2</kbd></button><button data-sim=not>not similar <kbd>3</kbd></button></div>
<p><button id=submit disabled>submit <kbd>Enter</kbd></button></p>
<p id=msg role=status></p>
<p class=note>Keys: <kbd>G</kbd>/<kbd>Space</kbd> generated · <kbd>R</kbd> reference · <kbd>1</kbd>-<kbd>3</kbd> similarity · <kbd>A</kbd>-<kbd>E</kbd> label · <kbd>Enter</kbd> submit</p>
</div>
<div class=card id=done hidden><h2>All trials answered — thank you.</h2><p id=donetext class=note></p></div>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
const KEY = "audioprobe-rater";
let rater = localStorage.getItem(KEY) || "", trials = [], answered = new Set(), cur = null, pick = {}, t0 = 0, busy = false;
const QUESTIONS = {notes: "How similar is the generated note to the reference note?",
  environmental: "How similar is the generated sound to the reference of its class?",
  speech: "How similar is the generated word to the reference recording?"};

async function load() {
  const r = await fetch("/api/trials?rater=" + encodeURIComponent(rater));
  const body = await r.json();
  if (!r.ok) { $("who").hidden = false; $("msg").textContent = body.error; return false; }
  trials = body.trials; answered = new Set(body.answered);
  $("run").textContent = "run " + body.run + " · " + trials.length + " trials";
  return true;
}
function next() {
  cur = trials.find(t => !answered.has(t.id)) || null;
  const n = answered.size;
  $("bar").style.width = (100 * n / Math.max(1, trials.length)) + "%";
  $("count").textContent = n + " / " + trials.length + " answered";
  if (!cur) { $("study").hidden = true; $("done").hidden = false;
    $("donetext").textContent = n + " answers saved in the run directory as " + rater + "."; return; }
  pick = {label: null, similarity: null}; t0 = performance.now(); $("msg").textContent = "";
  $("gen").src = "/clip/" + cur.id + "/gen";
  const five = cur.question === "label";
  $("labelq").hidden = !five;
  $("prompt").textContent = five ? "Listen to the generated clip, then choose its label." : "Class: " + cur.class;
  $("cls").textContent = cur.class ? "(" + cur.class + ")" : "";
  $("labels").innerHTML = "";
  cur.choices.forEach((c, i) => { const b = document.createElement("button");
    b.dataset.label = c; b.innerHTML = ""; b.append(c + " "); const k = document.createElement("kbd");
    k.textContent = "ABCDE"[i]; b.append(k); b.onclick = () => choose("label", c); $("labels").append(b); });
  $("simtext").textContent = QUESTIONS[cur.tier] || QUESTIONS.notes;
  reveal(!five);
  paint();
}
function reveal(on) {
  $("refbox").hidden = !on; $("simq").hidden = !on;
  if (on) $("ref").src = "/clip/" + cur.id + "/ref?rater=" + encodeURIComponent(rater); else $("ref").removeAttribute("src");
}
async function choose(what, value) {
  if (!cur || busy) return;
  if (what === "label" && pick.label) return;  // chosen blind: not changed once the reference is heard
  if (what === "label") {  // the server keeps the blind label, and plays the reference only after it
    busy = true; const t = cur;
    try {
      const r = await fetch("/api/label", {method: "POST", headers: {"Content-Type": "application/json"},
                                          body: JSON.stringify({rater, trial: t.id, label: value})});
      const res = await r.json();
      busy = false;
      if (cur !== t) return;
      if (!r.ok && !res.label) { $("msg").textContent = res.error || ("error " + r.status); paint(); return; }
      value = res.label;
      if (r.status === 409) $("msg").textContent = res.error;
    } catch (e) { busy = false; $("msg").textContent = "not saved (server unreachable): " + e; paint(); return; }
  }
  pick[what] = value;
  if (what === "label") reveal(true);
  paint();
}
function paint() {
  document.querySelectorAll("[data-label]").forEach(b => b.classList.toggle("on", b.dataset.label === pick.label));
  document.querySelectorAll("[data-sim]").forEach(b => b.classList.toggle("on", b.dataset.sim === pick.similarity));
  $("submit").disabled = busy || !pick.similarity || (cur.question === "label" && !pick.label);
}
async function submit() {
  if (!cur || $("submit").disabled) return;
  busy = true; paint();
  const body = {rater, trial: cur.id, similarity: pick.similarity, label: cur.question === "label" ? pick.label : null,
                elapsed_ms: Math.round(performance.now() - t0)};
  try {
    const r = await fetch("/api/rate", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const res = await r.json();
    if (r.ok || r.status === 409) { answered.add(cur.id); busy = false; next(); if (r.status === 409) $("msg").textContent = res.error; return; }
    $("msg").textContent = res.error || ("error " + r.status);
  } catch (e) { $("msg").textContent = "not saved (server unreachable): " + e; }
  busy = false; paint();
}
function play(id) { const a = $(id); if (!a.src || a.closest("[hidden]")) return; a.currentTime = 0; a.play(); }
$("play-gen").onclick = () => play("gen"); $("play-ref").onclick = () => play("ref");
document.querySelectorAll("[data-sim]").forEach(b => b.onclick = () => choose("similarity", b.dataset.sim));
$("submit").onclick = submit;
document.addEventListener("keydown", e => {
  if (e.target.tagName === "INPUT" || !cur || e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.toLowerCase();
  if (k === "g" || k === " ") { e.preventDefault(); play("gen"); }
  else if (k === "r") play("ref");
  else if ("123".includes(k) && k.length === 1 && !$("simq").hidden) choose("similarity", ["highly", "moderately", "not"][+k - 1]);
  else if ("abcde".includes(k) && k.length === 1 && cur.question === "label") { const c = cur.choices["abcde".indexOf(k)]; if (c) choose("label", c); }
  else if (k === "enter") { e.preventDefault(); submit(); }
});
async function start() {
  const v = $("rater").value.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$/.test(v)) { $("rater").setCustomValidity("letters, digits, . _ -"); $("rater").reportValidity(); return; }
  rater = v; localStorage.setItem(KEY, v); await begin();
}
async function begin() {
  if (!(await load())) return;
  $("who").hidden = true; $("study").hidden = false; $("me").textContent = rater; next();
}
$("start").onclick = start; $("rater").addEventListener("keydown", e => { if (e.key === "Enter") start(); });
if (rater) { $("rater").value = rater; begin(); } else { $("run").textContent = "enter a rater id to begin"; }
</script></body></html>
"""
