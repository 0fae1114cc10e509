// Done notifications. While runs are in flight the tab's title counts them
// ("⏳ 2 running · …"); when one finishes while the tab is in the background, the title says
// so and, once the user has allowed it, a browser notification links to the run.
(function () {
  "use strict";

  const ACTIVE = new Set(["pending", "submitting", "queued", "processing", "fetching"]);
  const baseTitle = document.title;
  const seen = new Map(); // run URL -> last status seen on this page
  let finishedUnseen = [];

  function cards() {
    return Array.from(document.querySelectorAll(".status-card[data-status][data-run-url]"));
  }

  function render() {
    const running = cards().filter((card) => ACTIVE.has(card.dataset.status)).length;
    let prefix = "";
    if (finishedUnseen.length) {
      const failed = finishedUnseen.some((item) => item.status !== "completed");
      prefix = (failed ? "⚠️ " : "✅ ") + finishedUnseen.length + " finished" + (running ? ", " + running + " running" : "") + " · ";
    } else if (running) {
      prefix = "⏳ " + running + " running · ";
    }
    document.title = prefix + baseTitle;
    const ask = document.getElementById("notify-permission");
    if (ask) ask.hidden = !(running && "Notification" in window && Notification.permission === "default");
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

  function check() {
    cards().forEach((card) => {
      const url = card.dataset.runUrl;
      const status = card.dataset.status;
      const before = seen.get(url);
      seen.set(url, status);
      if (before && ACTIVE.has(before) && !ACTIVE.has(status) && document.hidden) {
        finishedUnseen.push({ url: url, status: status });
        notify(url, status);
      }
    });
    render();
  }

  document.addEventListener("DOMContentLoaded", () => {
    check();
    const ask = document.getElementById("notify-permission");
    if (ask) ask.addEventListener("click", () => Notification.requestPermission().then(render));
  });
  document.addEventListener("htmx:afterSettle", check);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { finishedUnseen = []; render(); }
  });
})();
