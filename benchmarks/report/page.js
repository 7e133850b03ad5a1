// The leaderboard page's behaviour: sort, filter, column toggle, provenance rows and compare mode.
// Text from records reaches the document through textContent only.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("lb-data").textContent);
  var rowsById = {};
  data.rows.forEach(function (r) { rowsById[r.id] = r; });
  var header = document.querySelector("header");

  function setHeadHeight() {
    document.documentElement.style.setProperty("--head-h", header.offsetHeight + "px");
  }
  setHeadHeight();
  window.addEventListener("resize", setHeadHeight);

  // ---- sorting: each data row moves with its provenance row ----
  function sortKey(tr, col) {
    var td = tr.children[col];
    var k = td ? td.getAttribute("data-k") : "";
    if (k === null || k === "") return null;
    var f = Number(k);
    return isNaN(f) ? k : f;
  }
  document.querySelectorAll("table.lb").forEach(function (table) {
    var ths = table.querySelectorAll("thead th");
    ths.forEach(function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        ths.forEach(function (o) { o.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", dir);
        var body = table.tBodies[0];
        var pairs = Array.prototype.filter.call(body.children, function (tr) { return tr.classList.contains("row"); })
          .map(function (tr) { return [tr, tr.nextElementSibling]; });
        pairs.sort(function (a, b) {
          var x = sortKey(a[0], col), y = sortKey(b[0], col);
          if (x === null && y === null) return 0;
          if (x === null) return 1;          // unmeasured last, either way
          if (y === null) return -1;
          var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
          return dir === "ascending" ? c : -c;
        });
        pairs.forEach(function (p) { body.appendChild(p[0]); body.appendChild(p[1]); });
      });
    });
  });

  // ---- filters ----
  var selects = document.querySelectorAll("select[data-filter]");
  var count = document.getElementById("count");
  function applyFilters() {
    var want = {};
    selects.forEach(function (s) { if (s.value !== "") want[s.getAttribute("data-filter")] = s.value; });
    var shown = 0, total = 0;
    document.querySelectorAll("section.tbl").forEach(function (sec) {
      var visible = 0;
      sec.querySelectorAll("tr.row").forEach(function (tr) {
        total += 1;
        var ok = Object.keys(want).every(function (k) { return tr.getAttribute("data-" + k) === want[k]; });
        tr.hidden = !ok;
        var prov = tr.nextElementSibling;
        if (!ok) prov.hidden = true;
        else if (tr.querySelector("button.open").getAttribute("aria-expanded") === "true") prov.hidden = false;
        if (ok) visible += 1;
      });
      sec.hidden = visible === 0;
      shown += visible;
    });
    count.textContent = shown + " of " + total + " rows";
  }
  selects.forEach(function (s) { s.addEventListener("change", applyFilters); });

  document.getElementById("allcols").addEventListener("change", function (e) {
    document.body.classList.toggle("all-cols", e.target.checked);
  });

  // ---- provenance ----
  function toggle(tr) {
    var btn = tr.querySelector("button.open");
    var prov = tr.nextElementSibling;
    var open = btn.getAttribute("aria-expanded") !== "true";
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    btn.textContent = open ? "▾" : "▸";
    prov.hidden = !open;
  }
  document.querySelectorAll("tr.row").forEach(function (tr) {
    tr.querySelector("button.open").addEventListener("click", function (e) { e.stopPropagation(); toggle(tr); });
    tr.addEventListener("click", function (e) {
      if (e.target.closest("input, label, a, button")) return;
      toggle(tr);
    });
  });

  // ---- compare mode ----
  var picked = [];
  var panel = document.getElementById("compare");
  function meanSd(xs) {
    var n = xs.length, m = xs.reduce(function (a, b) { return a + b; }, 0) / n;
    var v = n > 1 ? xs.reduce(function (a, b) { return a + (b - m) * (b - m); }, 0) / (n - 1) : NaN;
    return [m, v, n];
  }
  function tq(df) {  // Student-t 97.5 % quantile; the table floors fractional df (a wider interval)
    var d = Math.max(1, Math.floor(df));
    return d < data.t975.length ? data.t975[d] : 1.96;
  }
  function welch(a, b) {
    var A = meanSd(a.accs.filter(function (x) { return x !== null; }));
    var B = meanSd(b.accs.filter(function (x) { return x !== null; }));
    var diff = A[0] - B[0];
    if (A[2] < 2 || B[2] < 2) return {diff: diff, lo: null, hi: null, why: "an interval needs two runs or more in each row"};
    var va = A[1] / A[2], vb = B[1] / B[2], se = Math.sqrt(va + vb);
    if (se === 0) return {diff: diff, lo: diff, hi: diff, df: Infinity};
    var df = (va + vb) * (va + vb) / (va * va / (A[2] - 1) + vb * vb / (B[2] - 1));
    var h = tq(df) * se;
    return {diff: diff, lo: diff - h, hi: diff + h, df: df};
  }
  function svgEl(name, attrs, text) {
    var el = document.createElementNS("http://www.w3.org/2000/svg", name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    return el;
  }
  function niceTicks(lo, hi, log) {
    var out = [];
    if (log) {
      [[1], [1, 2, 5], [1, 1.5, 2, 3, 5, 7]].some(function (ms) {
        out = [];
        for (var e = Math.floor(Math.log10(lo)) - 1; e <= Math.ceil(Math.log10(hi)) + 1; e++) {
          ms.forEach(function (m) { var v = m * Math.pow(10, e); if (v >= lo && v <= hi) out.push(v); });
        }
        return out.length >= 3;
      });
      if (out.length < 3) out = [lo, Math.sqrt(lo * hi), hi];
      return out;
    }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / 3 || 1)));
    [1, 2, 5, 10].some(function (m) { if ((hi - lo) / (step * m) <= 6) { step *= m; return true; } return false; });
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toPrecision(6));
    return out;
  }
  function drawCurves(rows) {
    var W = 640, H = 300, L = 56, R = 16, T = 12, B = 44;
    var pts = [];
    rows.forEach(function (r) { r.curve.forEach(function (p) { if (p[0] > 0 && p[1] !== null) pts.push(p); }); });
    var holder = document.getElementById("cmp-plot");
    holder.textContent = "";
    if (!pts.length) { holder.textContent = "No curve recorded for these rows."; return; }
    var xs = pts.map(function (p) { return p[0]; }), ys = pts.map(function (p) { return p[1]; });
    var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
    var log = x1 / x0 > 20;
    if (log) { x0 /= 1.3; x1 *= 1.3; } else { var pad = (x1 - x0) * 0.05 || 1; x0 = Math.max(0, x0 - pad); x1 += pad; }
    var y0 = Math.max(0, Math.floor(Math.min.apply(null, ys) - 2)), y1 = Math.min(100, Math.ceil(Math.max.apply(null, ys) + 2));
    function X(v) { return L + (W - L - R) * (log ? Math.log(v / x0) / Math.log(x1 / x0) : (v - x0) / (x1 - x0)); }
    function Y(v) { return T + (H - T - B) * (1 - (v - y0) / ((y1 - y0) || 1)); }
    var svg = svgEl("svg", {viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
      "aria-label": "accuracy over condense + train seconds for the two rows"});
    svg.appendChild(svgEl("rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "none", stroke: "#888"}));
    niceTicks(x0, x1, log).forEach(function (v) {
      svg.appendChild(svgEl("line", {x1: X(v), x2: X(v), y1: T, y2: H - B, stroke: "#ddd"}));
      svg.appendChild(svgEl("text", {x: X(v), y: H - B + 14, "text-anchor": "middle", "font-size": 11}, v >= 100 ? v.toFixed(0) : String(+v.toPrecision(3))));
    });
    niceTicks(y0, y1, false).forEach(function (v) {
      svg.appendChild(svgEl("line", {x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: "#ddd"}));
      svg.appendChild(svgEl("text", {x: L - 6, y: Y(v) + 4, "text-anchor": "end", "font-size": 11}, String(v)));
    });
    svg.appendChild(svgEl("text", {x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 12},
      "condense + train seconds" + (log ? " (log)" : "")));
    svg.appendChild(svgEl("text", {x: 14, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 12,
      transform: "rotate(-90 14 " + (T + H - B) / 2 + ")"}, "test accuracy (%)"));
    var colors = ["#0072B2", "#D55E00"], dash = ["", "6 3"];
    rows.forEach(function (r, k) {
      var p = r.curve.filter(function (q) { return q[0] > 0 && q[1] !== null; });
      svg.appendChild(svgEl("polyline", {points: p.map(function (q) { return X(q[0]) + "," + Y(q[1]); }).join(" "),
        fill: "none", stroke: colors[k], "stroke-width": 1.6, "stroke-dasharray": dash[k]}));
      p.forEach(function (q) {  // full-test passes filled, screened estimates hollow
        svg.appendChild(svgEl(k ? "rect" : "circle", k ? {x: X(q[0]) - 3, y: Y(q[1]) - 3, width: 6, height: 6,
          fill: q[2] ? colors[k] : "#fff", stroke: colors[k]} : {cx: X(q[0]), cy: Y(q[1]), r: 3,
          fill: q[2] ? colors[k] : "#fff", stroke: colors[k]}));
      });
      svg.appendChild(svgEl("text", {x: L + 8, y: T + 16 + 15 * k, fill: colors[k], "font-size": 12},
        (k ? "■ B: " : "● A: ") + r.label + (r.ipc ? " (IPC " + r.ipc + ")" : "")));
    });
    holder.appendChild(svg);
  }
  function renderCompare() {
    document.querySelectorAll("tr.row").forEach(function (tr) { tr.classList.toggle("picked", picked.indexOf(tr.id) >= 0); });
    if (picked.length < 2) {
      panel.hidden = picked.length === 0;
      document.getElementById("cmp-text").textContent = picked.length ? "Tick one more row to compare." : "";
      document.getElementById("cmp-plot").textContent = "";
      return;
    }
    panel.hidden = false;
    var a = rowsById[picked[0]], b = rowsById[picked[1]];
    var w = welch(a, b), ta = data.tables[a.table], tb = data.tables[b.table];
    var name = function (r) { return r.label + (r.ipc ? " (IPC " + r.ipc + ")" : ""); };
    var text = "A − B: " + name(a) + " − " + name(b) + " = " + (w.diff >= 0 ? "+" : "") + w.diff.toFixed(2) + " points";
    if (w.lo === null) text += " (" + w.why + ")";
    else text += ", 95 % interval [" + w.lo.toFixed(2) + ", " + w.hi.toFixed(2) + "] (Welch" +
      (isFinite(w.df) ? ", df " + w.df.toFixed(1) : "") + ")" + (w.lo <= 0 && w.hi >= 0 ? ": not distinguishable at 95 %." : ".");
    if (a.table !== b.table) text += " Different tables, not one comparison: A is " + ta.title + "; B is " + tb.title + ".";
    document.getElementById("cmp-text").textContent = text;
    drawCurves([a, b]);
  }
  document.querySelectorAll("input[data-row]").forEach(function (box) {
    box.addEventListener("change", function () {
      var id = box.getAttribute("data-row");
      if (box.checked) {
        picked.push(id);
        while (picked.length > 2) {
          var old = picked.shift();
          document.querySelector('input[data-row="' + old + '"]').checked = false;
        }
      } else {
        picked = picked.filter(function (p) { return p !== id; });
      }
      renderCompare();
    });
  });
  document.getElementById("cmp-clear").addEventListener("click", function () {
    document.querySelectorAll("input[data-row]").forEach(function (b) { b.checked = false; });
    picked = [];
    renderCompare();
  });
})();
