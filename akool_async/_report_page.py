"""The gallery page's template: one HTML document with its CSS and JS inline (no CDN, no fetch).

``_report.render_page`` fills ``{{TITLE}}``, ``{{STATS}}`` (the per-state counts, static HTML so
the summary paints before any script runs), ``{{INFO}}`` and ``{{DATA}}`` (the cards as JSON in
a ``<script type="application/json">``). The script builds the cards with ``textContent`` only
(never ``innerHTML`` from data), in chunks so the first screen paints at once even for 10,000
cards; media load lazily (``loading=lazy`` images, videos given their ``src`` when near view).
"""

from __future__ import annotations

from typing import Final

__all__ = ["CSP", "CSP_LOCAL", "PAGE"]

#: Only the folder (and, in link mode, the inputs' http(s) URLs) may be loaded; no fetch/XHR.
CSP: Final = (
    "default-src 'none'; img-src 'self' file: data: http: https:; "
    "media-src 'self' file: http: https:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'none'; form-action 'none'"
)
#: Only the folder: for pages whose inputs were fetched (or are not shown).
CSP_LOCAL: Final = (
    "default-src 'none'; img-src 'self' file: data:; media-src 'self' file:; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'none'; "
    "form-action 'none'"
)

PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta http-equiv="Content-Security-Policy" content="{{CSP}}">
<title>{{TITLE}}</title>
<style>
:root{--bg:#f6f7f9;--fg:#1c2430;--mut:#5d6b7a;--card:#fff;--line:#dde2e8;
--succeeded:#1e8e3e;--failed:#c5221f;--ambiguous:#b06000;--error:#a142f4;--running:#1a73e8;
--pending:#80868b}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
background:var(--bg);color:var(--fg)}
header{padding:16px 20px 8px;background:var(--card);border-bottom:1px solid var(--line)}
h1{font-size:18px;margin:0 0 10px}
.stats{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:10px}
.stat{border:1px solid var(--line);border-left:4px solid var(--c);border-radius:6px;
padding:4px 12px;min-width:96px}
.stat b{display:block;font-size:20px}.stat span{color:var(--mut)}
dl.info{display:flex;flex-wrap:wrap;gap:4px 28px;margin:0;color:var(--mut)}
dl.info dt{font-size:11px;text-transform:uppercase}dl.info dd{margin:0 0 6px;color:var(--fg)}
.st-succeeded{--c:var(--succeeded)}.st-failed{--c:var(--failed)}
.st-ambiguous{--c:var(--ambiguous)}.st-error{--c:var(--error)}
.st-running{--c:var(--running)}.st-pending{--c:var(--pending)}
nav{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;gap:6px;align-items:center;
padding:8px 20px;background:rgba(246,247,249,.96);border-bottom:1px solid var(--line)}
nav .group{display:flex;gap:4px;flex-wrap:wrap;margin-right:10px}
nav label{font-size:12px;color:var(--mut);margin-right:2px}
button.chip{font:inherit;font-size:12px;border:1px solid var(--line);background:var(--card);
border-radius:14px;padding:2px 10px;cursor:pointer}
button.chip[aria-pressed=true]{background:var(--fg);color:#fff;border-color:var(--fg)}
input[type=search]{font:inherit;padding:3px 8px;border:1px solid var(--line);border-radius:6px;
min-width:220px}
#shown{color:var(--mut);margin-left:auto}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;
padding:14px 20px}
.card{background:var(--card);border:1px solid var(--line);border-top:4px solid var(--c);
border-radius:8px;padding:8px;cursor:pointer;content-visibility:auto;
contain-intrinsic-size:auto 230px;outline:none}
.card:focus{box-shadow:0 0 0 3px #8ab4f8}
.card[hidden]{display:none}
.card:not([data-filled]){min-height:236px}
.pics{display:grid;grid-template-columns:1fr 1fr 1.4fr;gap:4px;align-items:end}
.pic{display:flex;flex-direction:column;min-width:0}
.pic small{color:var(--mut);font-size:10px;text-transform:uppercase}
.pic .box{aspect-ratio:1;background:#eceff3;border-radius:4px;overflow:hidden;display:flex;
align-items:center;justify-content:center;font-size:10px;color:var(--mut);text-align:center;
word-break:break-all}
.pic .box.vid{position:relative}
.pic .box.vid::after{content:"\\25B6";position:absolute;right:4px;bottom:2px;color:#fff;
text-shadow:0 0 3px #000;font-size:14px}
.pic img,.pic video{width:100%;height:100%;object-fit:cover;display:block}
.meta{margin-top:6px;display:flex;gap:6px;align-items:baseline;flex-wrap:wrap}
.badge{color:#fff;background:var(--c);border-radius:4px;padding:0 6px;font-size:12px}
.ref{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:100%}
.mut{color:var(--mut);font-size:12px}
.err{margin-top:4px;color:var(--failed);font-size:12px;overflow-wrap:anywhere}
.err b{font-weight:600}
.hash{font-family:ui-monospace,monospace;font-size:11px;color:var(--mut)}
.expired{color:var(--failed);font-weight:600}
dialog{width:min(1100px,96vw);max-height:94vh;border:0;border-radius:10px;padding:0}
dialog::backdrop{background:rgba(0,0,0,.6)}
.big{display:grid;grid-template-columns:minmax(0,2fr) minmax(0,1fr);gap:14px;padding:14px}
.big .main img,.big .main video{width:100%;max-height:70vh;object-fit:contain;background:#111;
border-radius:6px}
.big .inputs{display:flex;flex-direction:column;gap:8px}
.big .inputs img{max-width:100%;max-height:180px;border-radius:4px}
.big table{border-collapse:collapse;font-size:12px;width:100%;margin-top:8px}
.big td{border-top:1px solid var(--line);padding:3px 6px;vertical-align:top;
overflow-wrap:anywhere}
.big td:first-child{color:var(--mut);white-space:nowrap}
.big pre{font-size:11px;background:#f1f3f4;padding:8px;border-radius:6px;overflow:auto;
max-height:30vh}
.bar{display:flex;justify-content:space-between;align-items:center;padding:8px 14px;
border-bottom:1px solid var(--line)}
.bar button{font:inherit;border:1px solid var(--line);background:var(--card);border-radius:6px;
padding:2px 10px;cursor:pointer}
a{color:#1a5fb4}
</style>
</head>
<body>
<header>
<h1>{{TITLE}}</h1>
<div class="stats" id="stats">{{STATS}}</div>
<dl class="info">{{INFO}}</dl>
</header>
<nav aria-label="filters">
<div class="group" id="f-state"><label>state</label></div>
<div class="group" id="f-kind"><label>kind</label></div>
<div class="group" id="f-media"><label>media</label></div>
<input type="search" id="q" placeholder="search ref, line, job id  ( / )" aria-label="search">
<span id="shown"></span>
</nav>
<noscript><p style="padding:20px">The gallery needs JavaScript; the counts above are complete.
</p></noscript>
<main id="grid" aria-live="polite"></main>
<dialog id="big" aria-label="large view"><div class="bar"><span id="big-title"></span>
<span><button id="prev" title="previous (left arrow)">&larr;</button>
<button id="next" title="next (right arrow)">&rarr;</button>
<button id="close" title="close (Esc)">&times;</button></span></div>
<div class="big"><div class="main" id="big-main"></div><div id="big-side"></div></div>
</dialog>
<script type="application/json" id="data">{{DATA}}</script>
<script>
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("data").textContent);
  var cards = DATA.cards, els = new Array(cards.length);
  var grid = document.getElementById("grid"), shown = document.getElementById("shown");
  var STATES = ["succeeded", "failed", "ambiguous", "error", "running", "pending"];
  var filters = {state: new Set(), kind: new Set(), media: new Set()}, query = "";
  var visible = [], current = -1;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function link(url, text) {
    var a = el("a", null, text || url);
    a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer";
    a.addEventListener("click", function (ev) { ev.stopPropagation(); });
    return a;
  }
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (es) {
    es.forEach(function (e) {
      if (e.isIntersecting) {
        var v = e.target; observer.unobserve(v);
        v.preload = "metadata"; v.src = v.dataset.src;
      }
    });
  }, {rootMargin: "400px"}) : null;
  function video(src, poster, controls) {
    var v = el("video");
    v.muted = true; v.playsInline = true; v.preload = "none";
    if (poster) v.poster = poster;
    if (controls) { v.controls = true; v.preload = "metadata"; v.src = src + "#t=0.1"; }
    else if (observer) { v.dataset.src = src + "#t=0.1"; observer.observe(v); }
    return v;
  }
  function image(src, alt) {
    var i = el("img");
    i.loading = "lazy"; i.decoding = "async"; i.alt = alt; i.src = src;
    return i;
  }
  function pic(label, m, isResult, running) {
    var p = el("div", "pic"), box = el("div", "box");
    p.appendChild(el("small", null, label));
    if (m && (m.t || m.f || m.s)) {
      var src = m.t || m.f || m.s;
      if (m.v && !m.t) { box.className += " vid"; box.appendChild(video(m.f || m.s, null, false)); }
      else box.appendChild(image(src, label));
    } else if (m && m.u) {
      box.textContent = isResult ? "no file" : "not loaded";
      box.title = m.u;
    } else {
      box.textContent = !isResult ? "-" : (running ? "no result yet" : "no result");
    }
    p.appendChild(box);
    return p;
  }
  // A card is an empty shell until it comes near the view (or, up to 2,000 cards, the browser
  // is idle): 10,000 shells are cheap, 10,000 filled cards (440,000 nodes) are not.
  var filler = "IntersectionObserver" in window ? new IntersectionObserver(function (es) {
    es.forEach(function (e) { if (e.isIntersecting) fill(Number(e.target.dataset.i)); });
  }, {rootMargin: "800px"}) : null;
  function shell(c, i) {
    var a = el("article", "card st-" + c.s);
    a.tabIndex = 0; a.dataset.i = i; a.dataset.state = c.s; a.dataset.kind = c.k;
    a.addEventListener("click", function () { open(i); });
    if (filler) filler.observe(a);
    return a;
  }
  var filled = 0;
  function fill(i) {
    var a = els[i], c = cards[i];
    if (!a || a.dataset.filled) return;
    a.dataset.filled = "1"; filled++;
    if (filler) filler.unobserve(a);
    var pics = el("div", "pics");
    pics.appendChild(pic("source", c.src[0], false));
    pics.appendChild(pic("target", c.tgt[0], false));
    pics.appendChild(pic("result", c.res, true, c.s === "running" || c.s === "pending"));
    a.appendChild(pics);
    var meta = el("div", "meta");
    meta.appendChild(el("span", "badge", c.s));
    meta.appendChild(el("span", "mut", (c.l !== null && c.l !== undefined ? "line " + c.l :
      "#" + (c.i + 1)) + " \\u00b7 " + c.k + " " + c.m));
    if (c.r) meta.appendChild(el("span", "ref", c.r));
    a.appendChild(meta);
    if (c.e || c.em) {
      var err = el("div", "err");
      err.appendChild(el("b", null, (c.e || "error") + (c.ec ? " (" + c.ec + ")" : "") + ": "));
      err.appendChild(el("span", "reason", c.em || ""));
      a.appendChild(err);
    }
    var foot = el("div", "mut");
    if (c.h) foot.appendChild(el("span", "hash", "sha256 " + c.h.slice(0, 16) + "\\u2026 "));
    if (c.res && c.res.x) {
      foot.appendChild(el("span", c.res.xp ? "expired" : null,
        c.res.xp ? "URL expired " + c.res.x : "URL expires " + c.res.x));
    }
    if (foot.childNodes.length) a.appendChild(foot);
    if (filled === cards.length) document.body.dataset.filled = "1";
  }
  var idle = window.requestIdleCallback || function (f) {
    return setTimeout(function () { f({timeRemaining: function () { return 8; }}); }, 16);
  };
  var nextFill = 0, IDLE_FILL = 2000;
  function fillIdle(deadline) {
    while (nextFill < cards.length && deadline.timeRemaining() > 2) fill(nextFill++);
    if (nextFill < cards.length) idle(fillIdle);
  }
  function matches(c) {
    if (filters.state.size && !filters.state.has(c.s)) return false;
    if (filters.kind.size && !filters.kind.has(c.k)) return false;
    if (filters.media.size && !filters.media.has(c.m)) return false;
    if (query) {
      var hay = [c.r, c.l, c.id, c.j].map(function (v) { return v || ""; }).join(" ");
      hay = hay.toLowerCase();
      if (hay.indexOf(query) < 0) return false;
    }
    return true;
  }
  function apply() {
    visible = [];
    for (var i = 0; i < cards.length; i++) {
      var ok = matches(cards[i]);
      if (ok) visible.push(i);
      if (els[i]) els[i].hidden = !ok;
    }
    shown.textContent = "showing " + visible.length.toLocaleString() + " of " +
      cards.length.toLocaleString();
    document.body.dataset.shown = visible.length;
  }
  function chips(id, name, values) {
    var box = document.getElementById(id);
    values.forEach(function (v) {
      var b = el("button", "chip", v);
      b.type = "button"; b.dataset.filter = name; b.dataset.value = v;
      b.setAttribute("aria-pressed", "false");
      b.addEventListener("click", function () {
        var on = !filters[name].has(v);
        if (on) filters[name].add(v); else filters[name].delete(v);
        b.setAttribute("aria-pressed", String(on));
        apply();
      });
      box.appendChild(b);
    });
  }
  function distinct(key) {
    var seen = {};
    cards.forEach(function (c) { seen[c[key]] = 1; });
    return Object.keys(seen).sort();
  }
  chips("f-state", "state", STATES.filter(function (s) {
    return cards.some(function (c) { return c.s === s; });
  }));
  chips("f-kind", "kind", distinct("k"));
  chips("f-media", "media", distinct("m"));
  var q = document.getElementById("q");
  q.addEventListener("input", function () { query = q.value.trim().toLowerCase(); apply(); });

  // Build the cards in chunks: the first screen paints at once, the rest follows.
  var next = 0, CHUNK = 2000;
  function chunk() {
    var frag = document.createDocumentFragment(), end = Math.min(cards.length, next + CHUNK);
    for (; next < end; next++) {
      var e = shell(cards[next], next);
      e.hidden = !matches(cards[next]);
      els[next] = e; frag.appendChild(e);
    }
    grid.appendChild(frag);
    if (next < cards.length) setTimeout(chunk, 0);
    else {
      apply(); document.body.dataset.ready = "1";
      if (performance.mark) performance.mark("akool-cards-ready");
      if (cards.length <= IDLE_FILL) idle(fillIdle);  // beyond: filled as they come in view
    }
  }
  apply();
  chunk();

  // Large view.
  var dlg = document.getElementById("big");
  function row(t, k, v) {
    if (v === undefined || v === null || v === "") return;
    var tr = el("tr"); tr.appendChild(el("td", null, k));
    var td = el("td"); if (v instanceof Node) td.appendChild(v); else td.textContent = v;
    tr.appendChild(td); t.appendChild(tr);
  }
  function open(i) {
    current = i;
    var c = cards[i], main = document.getElementById("big-main");
    var side = document.getElementById("big-side");
    main.textContent = ""; side.textContent = "";
    document.getElementById("big-title").textContent = (c.l ? "line " + c.l : "#" + (c.i + 1)) +
      (c.r ? " \\u00b7 " + c.r : "") + " \\u00b7 " + c.s;
    if (c.res && c.res.f) {
      main.appendChild(c.res.v ? video(c.res.f, c.res.t, true) : image(c.res.f, "result"));
    } else {
      main.appendChild(el("p", "mut", c.s === "running" || c.s === "pending" ?
        "no result yet" : c.res && c.res.u ? "no local file: the result URL is below" :
        "no result (" + c.s + ")"));
    }
    var inputs = el("div", "inputs");
    [["source", c.src], ["target", c.tgt]].forEach(function (pair) {
      pair[1].forEach(function (m, n) {
        inputs.appendChild(el("small", "mut", pair[0] + (pair[1].length > 1 ? " " + (n + 1) : "")));
        if (m.s && !m.v) inputs.appendChild(image(m.s, pair[0]));
        else if (m.s) inputs.appendChild(video(m.s, null, true));
        inputs.appendChild(el("span", "hash", m.u));
      });
    });
    side.appendChild(inputs);
    var t = el("table");
    row(t, "state", c.s + (c.d && c.d !== c.s ? " (" + c.d + ")" : ""));
    row(t, "manifest line", c.l); row(t, "ref", c.r); row(t, "kind", c.k + " " + c.m);
    row(t, "id", c.id); row(t, "AKOOL job id", c.j);
    if (c.e || c.em) row(t, "error", (c.e || "") + (c.ec ? " (code " + c.ec + ")" : ""));
    row(t, "reason", c.em); row(t, "what now", c.hint);
    if (c.res && c.res.u) row(t, "result URL", c.res.xp ? c.res.u + " (expired)" :
      link(c.res.u));
    if (c.res && c.res.x) row(t, c.res.xp ? "expired" : "expires", c.res.x);
    row(t, "sha256", c.h); row(t, "resumed", c.rs ? "yes (from the journal)" : null);
    side.appendChild(t);
    if (c.q) { side.appendChild(el("pre", null, JSON.stringify(c.q, null, 1))); }
    if (!dlg.open) dlg.showModal();
  }
  function step(d) {
    if (!visible.length) return;
    var at = visible.indexOf(current);
    var n = visible[Math.max(0, Math.min(visible.length - 1, (at < 0 ? 0 : at + d)))];
    open(n);
  }
  document.getElementById("prev").onclick = function () { step(-1); };
  document.getElementById("next").onclick = function () { step(1); };
  document.getElementById("close").onclick = function () { dlg.close(); };
  dlg.addEventListener("close", function () {
    var m = document.getElementById("big-main"); m.textContent = "";
    if (els[current]) els[current].focus();
  });
  dlg.addEventListener("click", function (ev) { if (ev.target === dlg) dlg.close(); });

  // Keyboard: arrows move between visible cards, Enter opens, / searches, Esc closes.
  function columns() {
    var style = getComputedStyle(grid).gridTemplateColumns;
    return Math.max(1, style.split(" ").length);
  }
  document.addEventListener("keydown", function (ev) {
    if (dlg.open) {
      if (ev.key === "ArrowRight") { step(1); ev.preventDefault(); }
      else if (ev.key === "ArrowLeft") { step(-1); ev.preventDefault(); }
      return;
    }
    if (ev.target === q) { if (ev.key === "Escape") q.blur(); return; }
    if (ev.key === "/") { q.focus(); ev.preventDefault(); return; }
    var moves = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns()};
    var card = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest(".card");
    if (ev.key in moves) {
      if (!visible.length) return;
      var at = card ? visible.indexOf(Number(card.dataset.i)) : -1;
      var n = at < 0 ? 0 : Math.max(0, Math.min(visible.length - 1, at + moves[ev.key]));
      var target = els[visible[n]];
      if (target) { target.focus(); target.scrollIntoView({block: "nearest"}); }
      ev.preventDefault();
    } else if (ev.key === "Enter" && card) {
      open(Number(card.dataset.i)); ev.preventDefault();
    }
  });
})();
</script>
</body>
</html>
"""
