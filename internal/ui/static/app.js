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


  // Run page: follow the selected job's logs. The page shows the latest events; this asks the UI's
  // logs endpoint (logs/poll with the session's token) for newer ones from the timestamp of the last
  // event shown. start_time is inclusive, so the events at that timestamp already shown are skipped.
  var ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

  function setupLogs(pre) {
    var url = pre.getAttribute("data-logs-url");
    if (!url || pre.getAttribute("data-live") !== "1" || !window.fetch) return;
    var empty = document.getElementById("logs-empty");
    var state = document.getElementById("logs-state");
    var errBox = document.getElementById("logs-error");
    var refresh = document.getElementById("logs-refresh");
    var lastTs = pre.getAttribute("data-start") || "";
    var seen = Number(pre.getAttribute("data-seen")) || 0;
    var queryStart = lastTs, skip = seen, nextToken = null;
    var draining = false, failures = 0;
    var decoders = {};
    var initial = {
      run: (document.getElementById("run-status") || {}).textContent,
      job: (document.getElementById("job-status") || {}).textContent
    };

    function decode(b64, src) {
      var bin;
      try { bin = atob(b64); } catch (e) { return b64; }
      var bytes = new Uint8Array(bin.length);
      for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      if (!window.TextDecoder) return bin;
      var d = decoders[src] || (decoders[src] = new TextDecoder("utf-8"));
      return d.decode(bytes, { stream: true });
    }

    function clean(s) { return s.replace(ANSI, "").replace(/\r\n/g, "\n").replace(/\r/g, "\n"); }

    function atBottom() { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 48; }

    function append(events) {
      if (!events.length) return;
      var stick = atBottom();
      var frag = document.createDocumentFragment();
      events.forEach(function (ev) {
        var src = ev.log_source === "stderr" ? "stderr" : "stdout";
        var span = document.createElement("span");
        span.className = "log-" + src;
        span.textContent = clean(decode(ev.message, src));
        frag.appendChild(span);
        if (ev.timestamp === lastTs) seen++;
        else { lastTs = ev.timestamp; seen = 1; }
      });
      pre.appendChild(frag);
      if (empty) empty.hidden = true;
      if (stick) pre.scrollTop = pre.scrollHeight;
    }

    function setBadge(id, status, cls, extra) {
      var el = document.getElementById(id);
      if (!el || !status) return;
      el.textContent = status;
      el.className = "badge " + (extra ? extra + " " : "") + (cls || "");
    }

    function schedule(ms) { setTimeout(poll, ms); }

    function poll() {
      var q = url;
      if (queryStart) q += "&start_time=" + encodeURIComponent(queryStart);
      if (nextToken) q += "&next_token=" + encodeURIComponent(nextToken);
      fetch(q, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          return r.json().then(function (b) { return { ok: r.ok, body: b }; }, function () {
            throw new Error("The server's answer was not the expected one; your session may have ended. Reload the page.");
          });
        })
        .then(function (res) {
          var b = res.body;
          if (!res.ok || b.error) throw new Error(b.error || "The server refused the request.");
          failures = 0;
          if (errBox) errBox.hidden = true;
          var fresh = [];
          (b.logs || []).forEach(function (ev) {
            if (!nextToken && skip > 0 && ev.timestamp === queryStart) { skip--; return; }
            fresh.push(ev);
          });
          append(fresh);
          setBadge("run-status", b.run_status, b.run_badge, "badge-lg");
          var fact = document.getElementById("run-status-fact");
          if (fact && b.run_status) fact.textContent = b.run_status;
          setBadge("job-status", b.job_status, b.job_badge);
          if (refresh && (b.run_status !== initial.run || b.job_status !== initial.job)) {
            refresh.classList.add("btn-primary");
            refresh.classList.remove("btn-secondary");
            refresh.textContent = "Reload for details";
          }
          if (b.next_token) { nextToken = b.next_token; schedule(0); return; }
          nextToken = null;
          queryStart = lastTs;
          skip = seen;
          if (b.live) { schedule(1500); return; }
          // The job ended: one more look for output written while it ended, then stop.
          if (!draining) { draining = true; schedule(300); return; }
          if (state) { state.textContent = "Finished"; state.classList.remove("is-live"); }
          if (empty && !pre.childNodes.length) empty.textContent = "This job wrote no output.";
        })
        .catch(function (err) {
          failures++;
          if (errBox) { errBox.textContent = err.message; errBox.hidden = false; }
          if (failures < 8) schedule(Math.min(2000 * failures, 10000));
          else if (state) { state.textContent = "Stopped following"; state.classList.remove("is-live"); }
        });
    }
    schedule(1000);
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
    document.querySelectorAll("pre[data-logs-url]").forEach(setupLogs);
    var logs = document.getElementById("logs");
    if (logs) logs.scrollTop = logs.scrollHeight;
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
