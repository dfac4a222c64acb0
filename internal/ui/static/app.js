// dstack web console: small enhancements over server-rendered pages. Every page works without it.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function lineCount(text) {
    var n = text.split("\n").length;
    if (text.endsWith("\n") && n > 1) n--;
    return Math.max(n, 1);
  }

  // YAML editor: line numbers and error lines that follow the text, auto-growing height, Tab indents.
  function setupEditor(ed) {
    var ta = ed.querySelector("textarea");
    var gutter = ed.querySelector(".editor-gutter");
    var hl = ed.querySelector(".editor-hl");
    if (!ta || !gutter || !hl) return;
    var errLines = (ta.getAttribute("data-error-lines") || "").split(",").filter(Boolean).map(Number);
    var escaped = false;

    function render() {
      var n = lineCount(ta.value);
      if (gutter.children.length !== n) {
        var g = document.createDocumentFragment(), h = document.createDocumentFragment();
        for (var i = 1; i <= n; i++) {
          var s = document.createElement("span");
          s.textContent = String(i);
          s.setAttribute("data-line", String(i));
          var d = document.createElement("div");
          d.setAttribute("data-line", String(i));
          if (errLines.indexOf(i) >= 0) { s.className = "err"; d.className = "err"; }
          g.appendChild(s);
          h.appendChild(d);
        }
        gutter.replaceChildren(g);
        hl.replaceChildren(h);
      }
      ta.rows = n;
      ta.style.height = "auto";
      ta.style.height = ta.scrollHeight + (ta.offsetHeight - ta.clientHeight) + "px";
    }

    ta.addEventListener("input", function () {
      // Lines shift when lines are added or removed above an error: errors belong to the text the
      // server saw, so drop the marks once the line count changes.
      if (errLines.length && lineCount(ta.value) !== gutter.children.length) {
        errLines = [];
        ed.classList.remove("has-errors");
      }
      render();
    });
    ta.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape") { escaped = true; return; }
      if (ev.key === "Tab" && !escaped && !ev.ctrlKey && !ev.altKey && !ev.metaKey) {
        ev.preventDefault();
        var start = ta.selectionStart, end = ta.selectionEnd, v = ta.value;
        if (ev.shiftKey) {
          var ls = v.lastIndexOf("\n", start - 1) + 1;
          if (v.substr(ls, 2) === "  ") {
            ta.value = v.slice(0, ls) + v.slice(ls + 2);
            ta.selectionStart = ta.selectionEnd = Math.max(ls, start - 2);
          }
        } else {
          ta.value = v.slice(0, start) + "  " + v.slice(end);
          ta.selectionStart = ta.selectionEnd = start + 2;
        }
        ta.dispatchEvent(new Event("input"));
        return;
      }
      escaped = false;
    });
    render();
    window.addEventListener("resize", render);
  }

  // Jump from an issue to its line: focus the editor and select the line.
  function goToLine(line, col) {
    var ta = document.getElementById("config_yaml");
    if (!ta) return;
    var lines = ta.value.split("\n");
    var start = 0;
    for (var i = 0; i < line - 1 && i < lines.length; i++) start += lines[i].length + 1;
    var len = (lines[line - 1] || "").length;
    ta.focus();
    ta.setSelectionRange(start + Math.max(0, Math.min((col || 1) - 1, len)), start + len);
    var ed = ta.closest(".editor");
    var row = ed && ed.querySelector('.editor-gutter [data-line="' + line + '"]');
    if (row) {
      var top = row.offsetTop - ed.clientHeight / 3;
      ed.scrollTop = Math.max(0, top);
    }
    document.querySelectorAll(".editor-hl .focus-line").forEach(function (d) { d.classList.remove("focus-line"); });
    var hlRow = ed && ed.querySelector('.editor-hl [data-line="' + line + '"]');
    if (hlRow && !hlRow.classList.contains("err")) hlRow.classList.add("focus-line");
  }

  // Unions (creds): show the fields of the chosen variant only.
  function setupUnion(fs) {
    var radios = fs.querySelectorAll('input[type="radio"][data-variant]');
    function update() {
      radios.forEach(function (r) {
        var panel = document.getElementById(r.getAttribute("data-variant"));
        if (!panel) return;
        panel.hidden = !r.checked;
        panel.querySelectorAll("input, select, textarea").forEach(function (el) { el.disabled = !r.checked; });
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", update); });
    update();
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest("[data-line].issue-where");
    if (a) {
      ev.preventDefault();
      goToLine(Number(a.getAttribute("data-line")), Number(a.getAttribute("data-col")));
      return;
    }
    var rev = ev.target.closest("[data-reveal]");
    if (rev) {
      var input = document.getElementById(rev.getAttribute("data-reveal"));
      if (!input) return;
      var show = input.type === "password";
      input.type = show ? "text" : "password";
      rev.textContent = show ? "Hide" : "Show";
      rev.setAttribute("aria-pressed", show ? "true" : "false");
      return;
    }
    var cp = ev.target.closest("[data-copy]");
    if (cp) {
      var el = document.getElementById(cp.getAttribute("data-copy"));
      if (!el || !navigator.clipboard) return;
      navigator.clipboard.writeText(el.textContent.trim()).then(function () {
        var old = cp.textContent;
        cp.textContent = "Copied";
        setTimeout(function () { cp.textContent = old; }, 1500);
      });
    }
  });

  // Close an open confirmation with Escape and give focus back to its button.
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "Escape") return;
    var open = document.querySelector("details.confirm[open]");
    if (open) {
      open.open = false;
      var s = open.querySelector("summary");
      if (s) s.focus();
    }
  });

  function init() {
    document.querySelectorAll("[data-editor]").forEach(setupEditor);
    document.querySelectorAll("[data-union]").forEach(setupUnion);
    // After a failed submit, take keyboard users to the first problem.
    var err = document.querySelector("#yaml-errors .issue-where");
    if (err) {
      goToLine(Number(err.getAttribute("data-line")), Number(err.getAttribute("data-col")));
    } else {
      var bad = document.querySelector('.backend-form [aria-invalid="true"]');
      if (bad) bad.focus();
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
