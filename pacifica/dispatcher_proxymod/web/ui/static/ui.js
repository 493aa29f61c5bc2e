// The dashboard's only script: while a run on the page is waiting or running, reload the page
// every few seconds (the body carries data-refresh). The pages work without it.
"use strict";
(function () {
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!(seconds > 0)) { return; }
  var note = document.createElement("p");
  note.className = "refresh";
  note.textContent = "This page refreshes every " + seconds + " s while a run is waiting or running.";
  var main = document.querySelector("main");
  if (main) { main.appendChild(note); }
  window.setTimeout(function () {
    if (document.visibilityState !== "hidden") { window.location.reload(); }
    else { document.addEventListener("visibilitychange", function () { window.location.reload(); }, { once: true }); }
  }, seconds * 1000);
})();
