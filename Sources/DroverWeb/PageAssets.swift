/// The dashboard's stylesheet and script, served by drover itself (no CDN, no build step).
enum PageAssets {
    static let style = """
        :root { color-scheme: light dark; --ok: #1a7f37; --bad: #c62828; --wait: #9a6700; --run: #0969da; --off: #6e7781; }
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0; }
        header { display: flex; flex-wrap: wrap; justify-content: space-between; gap: .5em; padding: .5em 1em; border-bottom: 1px solid #8884; }
        nav a { margin-right: .7em; }
        main { padding: 0 1em 2em; max-width: 1400px; }
        h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.4em; } small { font-weight: normal; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; min-width: 100%; }
        th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #8883; vertical-align: top; }
        td code { font-size: .9em; word-break: break-all; }
        .none { color: var(--off); font-style: italic; }
        .st { white-space: nowrap; font-weight: 600; }
        .st-up, .st-succeeded { color: var(--ok); }
        .st-down, .st-failed, .st-lost, .st-untrusted { color: var(--bad); }
        .st-suspect, .st-waiting, .st-queued, .st-approval, .st-dispatched { color: var(--wait); }
        .st-running, .st-compensating { color: var(--run); }
        .st-compensated { color: var(--ok); }
        .st-compensation_failed { color: var(--bad); }
        .st-cancelled, .st-skipped, .st-quarantined { color: var(--off); }
        .conn { color: var(--off); font-size: .9em; }
        .filter { margin: .5em 0; display: flex; flex-wrap: wrap; gap: .6em; align-items: end; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
        dt { font-weight: 600; }
        .actions form { display: inline-block; margin-right: 1em; }
        button { font: inherit; padding: .3em .8em; cursor: pointer; }
        button.danger { border: 1px solid var(--bad); color: var(--bad); background: transparent; }
        pre#output, pre.stderr { background: #8881; padding: .6em; max-height: 60vh; overflow: auto; white-space: pre-wrap; word-break: break-all; }
        pre#output .err { color: var(--bad); } pre#output .note { color: var(--off); font-style: italic; }
        svg text { font: 11px system-ui, sans-serif; fill: currentColor; }
        svg .node rect { fill: #8882; stroke: currentColor; stroke-width: 1; }
        svg .node.st-succeeded rect, svg .bar.st-succeeded rect { fill: #1a7f3755; }
        svg .node.st-failed rect, svg .bar.st-failed rect { fill: #c6282855; }
        svg .node.st-running rect, svg .bar.st-running rect { fill: #0969da55; }
        svg .node.st-skipped rect, svg .node.st-cancelled rect { fill: #6e778133; stroke-dasharray: 4 2; }
        svg .node .sub { font-size: 10px; }
        svg .edge { stroke: currentColor; stroke-opacity: .5; } svg .edge-failed { stroke-dasharray: 3 3; }
        svg .bar rect { stroke: currentColor; stroke-width: .5; }
        svg .grid, svg .row { stroke: #8884; } svg .tick { font-size: 10px; }
        svg .mark line { stroke: var(--bad); stroke-width: 2; } svg .mark-up line { stroke: var(--ok); }
        svg marker path { fill: currentColor; }
        @media (max-width: 700px) { main { padding: 0 .4em 2em; } th, td { padding: .2em .3em; } body { font-size: 13px; } }
        """

    static let script = """
        // drover dashboard: refreshes each page's #live part after every journal commit (the
        // server's event stream says when), keeps ages ticking, streams job output as text.
        (function () {
          "use strict";
          var conn = document.getElementById("conn");
          function fmt(s) {
            s = Math.max(0, s);
            if (s < 60) return Math.floor(s) + "s";
            if (s < 3600) return Math.floor(s / 60) + "m" + String(Math.floor(s % 60)).padStart(2, "0") + "s";
            return Math.floor(s / 3600) + "h" + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
          }
          function tick() {
            var now = Date.now() / 1000;
            document.querySelectorAll("[data-at]").forEach(function (e) { e.textContent = fmt(now - parseFloat(e.dataset.at)) + " ago"; });
          }
          setInterval(tick, 1000); // the display of ages only; data comes from the event stream
          var busy = false, again = false, last = 0;
          function refresh() {
            if (busy) { again = true; return; }
            busy = true;
            var wait = Math.max(0, 1000 - (Date.now() - last));
            setTimeout(function () {
              fetch(location.href, { headers: { "X-Drover-Fragment": "1" }, credentials: "same-origin" })
                .then(function (r) { return r.text(); })
                .then(function (t) {
                  var doc = new DOMParser().parseFromString(t, "text/html");
                  var fresh = doc.getElementById("live"), cur = document.getElementById("live");
                  if (fresh && cur) cur.replaceWith(document.importNode(fresh, true));
                  tick();
                })
                .catch(function () {})
                .finally(function () { busy = false; last = Date.now(); if (again) { again = false; refresh(); } });
            }, wait);
          }
          if (document.getElementById("live") && window.EventSource) {
            var es = new EventSource("/api/events/stream?after=now");
            es.onopen = function () { conn.textContent = "live"; };
            es.onerror = function () { conn.textContent = "reconnecting…"; };
            es.addEventListener("change", refresh);
            es.addEventListener("audit", refresh);
          }
          var out = document.getElementById("output");
          if (out && out.dataset.job && window.EventSource) {
            var first = true;
            function append(text, cls) {
              if (first) { out.textContent = ""; first = false; }
              var s = document.createElement("span");
              s.className = cls;
              s.textContent = text; // text, never HTML
              out.appendChild(s);
              out.scrollTop = out.scrollHeight;
            }
            var os = new EventSource("/api/jobs/" + encodeURIComponent(out.dataset.job) + "/output/stream");
            os.addEventListener("attempt", function (e) { var d = JSON.parse(e.data); append("── attempt " + d.attempt + " on " + d.host + " ──\\n", "note"); });
            os.addEventListener("stdout", function (e) { append(JSON.parse(e.data), "out"); });
            os.addEventListener("stderr", function (e) { append(JSON.parse(e.data), "err"); });
            os.addEventListener("note", function (e) { append("(" + JSON.parse(e.data) + ")\\n", "note"); });
            os.addEventListener("end", function (e) { var d = JSON.parse(e.data); append("── job " + d.state + (d.reason ? ": " + d.reason : "") + " ──\\n", "note"); os.close(); });
          }
        })();
        """
}
