// Progressive enhancement for the edit page: live word diff, keyboard shortcuts, rating by digits.
// Everything works without it (forms post normally); text is only ever inserted with textContent.
(function () {
  "use strict";
  function tokens(s) { return s.match(/\s+|[^\s]+/g) || []; }
  function diff(a, b) {
    var x = tokens(a), y = tokens(b), n = x.length, m = y.length;
    if (n * m > 4000000) { return [["-", a], ["+", b]]; }
    var L = [];
    for (var i = 0; i <= n; i++) { L.push(new Uint32Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--)
      L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    var out = [], push = function (op, t) {
      if (out.length && out[out.length - 1][0] === op) out[out.length - 1][1] += t; else out.push([op, t]);
    };
    i = 0; j = 0;
    while (i < n && j < m) {
      if (x[i] === y[j]) { push("=", x[i]); i++; j++; }
      else if (L[i + 1][j] >= L[i][j + 1]) { push("-", x[i]); i++; }
      else { push("+", y[j]); j++; }
    }
    while (i < n) push("-", x[i++]);
    while (j < m) push("+", y[j++]);
    return out;
  }
  function render(box, parts) {
    box.textContent = "";
    parts.forEach(function (p) {
      var el = document.createElement(p[0] === "=" ? "span" : p[0] === "-" ? "del" : "ins");
      el.textContent = p[1];
      box.appendChild(el);
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var dirty = false;
    document.querySelectorAll("textarea[data-original]").forEach(function (ta) {
      var orig = document.getElementById(ta.dataset.original).textContent;
      var box = document.getElementById(ta.dataset.diff);
      ta.addEventListener("input", function () { dirty = true; render(box, diff(orig, ta.value)); });
    });
    document.querySelectorAll("form").forEach(function (f) { f.addEventListener("submit", function () { dirty = false; }); });
    window.addEventListener("beforeunload", function (e) { if (dirty) { e.preventDefault(); e.returnValue = ""; } });
    var form = document.getElementById("edit-form");
    if (!form) return;
    var criteria = Array.prototype.slice.call(form.querySelectorAll(".criterion"));
    var current = 0;
    function focusCriterion(k) {
      criteria.forEach(function (c, idx) { c.classList.toggle("focus", idx === k); });
      current = k;
    }
    if (criteria.length) focusCriterion(0);
    criteria.forEach(function (c, idx) { c.addEventListener("click", function () { focusCriterion(idx); }); });
    function click(id) { var el = document.getElementById(id); if (el) el.click(); }
    document.addEventListener("keydown", function (e) {
      var typing = e.target && (e.target.tagName === "TEXTAREA" || e.target.tagName === "SELECT" ||
                                e.target.tagName === "INPUT" && e.target.type !== "radio");
      if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); dirty = false; click("submit"); }
      else if ((e.ctrlKey || e.metaKey) && (e.key === "s" || e.key === "S")) { e.preventDefault(); dirty = false; click("save"); }
      else if (e.altKey && (e.key === "k" || e.key === "K")) { e.preventDefault(); dirty = false; click("skip"); }
      else if (e.altKey && (e.key === "f" || e.key === "F")) { e.preventDefault(); dirty = false; click("flag"); }
      else if (!typing && !e.ctrlKey && !e.altKey && !e.metaKey && /^[0-9]$/.test(e.key) && criteria.length) {
        var radio = criteria[current].querySelector('input[value="' + e.key + '"]');
        if (radio) { radio.checked = true; if (current + 1 < criteria.length) focusCriterion(current + 1); }
      }
    });
  });
})();
