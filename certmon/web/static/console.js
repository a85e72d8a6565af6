// The console's one script. Every page works without it; with it the queue refreshes itself, "select every row"
// ticks the queue's boxes, "/" jumps to the search field, and a refused form's explanation takes the focus.
(function () {
  "use strict";

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  // The queue asks for its rows again every few seconds. The rows it gets replace the shown ones only when they
  // differ, keeping the ticked boxes and the focus, so that a refresh never takes a half-made selection away.
  function liveQueue(live) {
    var url = live.getAttribute("data-refresh-url");
    var seconds = parseFloat(live.getAttribute("data-refresh-seconds")) || 10;
    var stamp = document.getElementById("queue-updated");
    var announce = document.getElementById("queue-announce");
    var ended = document.getElementById("queue-ended");
    var last = null;
    var busy = false;
    var timer = null;

    function split(html) {
      var holder = document.createElement("template");
      holder.innerHTML = html;
      var fresh = holder.content.querySelector("[data-queue-stamp]");
      var info = fresh ? { text: fresh.textContent, summary: fresh.getAttribute("data-summary") } : null;
      if (fresh) { fresh.parentNode.removeChild(fresh); }
      return { info: info, rows: holder.innerHTML };
    }

    function apply(rows) {
      var ticked = {};
      live.querySelectorAll("input[name=ids]:checked").forEach(function (box) { ticked[box.id] = true; });
      var focused = document.activeElement && live.contains(document.activeElement) ? document.activeElement.id : "";
      live.innerHTML = rows;
      Object.keys(ticked).forEach(function (id) {
        var box = document.getElementById(id);
        if (box) { box.checked = true; }
      });
      if (focused) {
        var again = document.getElementById(focused);
        if (again) { again.focus(); }
      }
    }

    function tick() {
      if (busy) { return; }
      busy = true;
      fetch(url + window.location.search, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          if (response.status === 401) {
            window.clearInterval(timer);
            if (ended) { ended.hidden = false; }
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html === null) { return; }
          var parts = split(html);
          if (parts.info && stamp) { stamp.textContent = parts.info.text; }
          if (last === null) { last = split(live.innerHTML).rows; }
          if (parts.rows !== last) {
            last = parts.rows;
            apply(parts.rows);
            if (announce && parts.info) { announce.textContent = parts.info.summary; }
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }

    timer = window.setInterval(tick, seconds * 1000);
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.id === "select-all") {
      document.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = target.checked; });
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var search = document.getElementById("q");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("queue-live");
    if (live) { liveQueue(live); }
    var problem = document.getElementById("problem");
    if (problem) { problem.focus(); }
  });
}());
