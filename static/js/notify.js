// Done notifications. While runs are in flight the tab's title counts them
// ("⏳ 2 running · …"); when one finishes while the tab is in the background, the title says
// so and, once the user has allowed it, a browser notification links to the run.
//
// Two sources feed one map of run URL -> last status seen: the status cards on this page
// (they poll every 2 s, but only while the tab is visible), and one small read of the
// user's live and lately finished runs (data-in-flight-url on <body>), repeated every
// 10 s while any run is live, hidden or not: so History and Generate count the runs too,
// and a background tab learns that one finished.
(function () {
  "use strict";

  const ACTIVE = new Set(["pending", "submitting", "queued", "processing", "fetching"]);
  const EVERY_MS = 10000;
  const baseTitle = document.title;
  const seen = new Map();
  let finishedUnseen = [];
  let timer = null;

  function cards() {
    return Array.from(document.querySelectorAll(".status-card[data-status][data-run-url]"));
  }

  function running() {
    let count = 0;
    seen.forEach((status) => { if (ACTIVE.has(status)) count += 1; });
    return count;
  }

  function render() {
    const live = running();
    let prefix = "";
    if (finishedUnseen.length) {
      const failed = finishedUnseen.some((item) => item.status !== "completed");
      prefix = (failed ? "⚠️ " : "✅ ") + finishedUnseen.length + " finished" + (live ? ", " + live + " running" : "") + " · ";
    } else if (live) {
      prefix = "⏳ " + live + " running · ";
    }
    document.title = prefix + baseTitle;
    const ask = document.getElementById("notify-permission");
    if (ask) ask.hidden = !(live && "Notification" in window && Notification.permission === "default");
  }

  function notify(url, status) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const words = status === "completed" ? "Your run is ready." : "A run ended: " + status.replace("_", " ") + ".";
    const note = new Notification("Kling O1 playground", { body: words, tag: url });
    note.onclick = () => {
      window.focus();
      if (location.pathname !== url) location.href = url;
      note.close();
    };
  }

  // One status seen for one run: a change from live to finished while the tab is hidden
  // is what the user wants to hear about, once (the later source finds it already final).
  function observe(url, status) {
    const before = seen.get(url);
    // A run never goes from finished back to live: such a word is a read that started
    // before the card's last poll, and would have the run reported done twice.
    if (before && !ACTIVE.has(before) && ACTIVE.has(status)) return;
    seen.set(url, status);
    if (before && ACTIVE.has(before) && !ACTIVE.has(status) && document.hidden) {
      finishedUnseen.push({ url: url, status: status });
      notify(url, status);
    }
  }

  function check() {
    cards().forEach((card) => observe(card.dataset.runUrl, card.dataset.status));
    render();
    schedule();
  }

  function schedule() {
    if (timer || !document.body.dataset.inFlightUrl || !running()) return;
    timer = setTimeout(() => { timer = null; fetchInFlight(); }, EVERY_MS);
  }

  function fetchInFlight() {
    const url = document.body.dataset.inFlightUrl;
    if (!url) return;
    let signedOut = false;
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => {
        // Signed out meanwhile (the log-in page answers): stop asking. A server error
        // (a restart, say) is no news: what we know stays, and we ask again later.
        signedOut = response.redirected;
        const json = (response.headers.get("Content-Type") || "").includes("application/json");
        return response.ok && json ? response.json() : null;
      })
      .then((answer) => {
        if (!answer) return;
        const listed = new Set();
        (answer.runs || []).forEach((run) => { listed.add(run.url); observe(run.url, run.status); });
        // A live run the server no longer lists (deleted, say) is no longer counted.
        seen.forEach((status, runUrl) => {
          if (ACTIVE.has(status) && !listed.has(runUrl)) seen.delete(runUrl);
        });
      })
      .catch(() => {})
      .finally(() => {
        render();
        if (signedOut) delete document.body.dataset.inFlightUrl; else schedule();
      });
  }

  document.addEventListener("DOMContentLoaded", () => {
    check();
    fetchInFlight();
    const ask = document.getElementById("notify-permission");
    if (ask) ask.addEventListener("click", () => Notification.requestPermission().then(render));
  });
  document.addEventListener("htmx:afterSettle", check);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { finishedUnseen = []; render(); }
  });
})();
