// One control for several videos: the batch page's "Play all", the compare page, and the
// keyboard on any result view. Space plays/pauses, "," and "." step one frame back/forward.
(function () {
  "use strict";

  function clock(seconds) {
    const m = Math.floor(seconds / 60);
    const s = (seconds % 60).toFixed(1).padStart(4, "0");
    return m + ":" + s;
  }

  // The videos of a group are looked up each time: a batch's cards turn into players while
  // the page is open.
  function videosOf(group) {
    return Array.from(group.querySelectorAll("video[data-sync]"));
  }

  function seekAll(videos, t) {
    videos.forEach((v) => {
      v.currentTime = Math.max(0, Math.min(t, (v.duration || t) - 0.001));
    });
  }

  function leader(videos) {
    return videos.reduce((a, b) => ((b.duration || 0) > (a.duration || 0) ? b : a), videos[0]);
  }

  function togglePlay(videos) {
    if (!videos.length) return;
    if (videos.every((v) => v.paused)) {
      seekAll(videos, leader(videos).currentTime);
      videos.forEach((v) => v.play().catch(() => {}));
    } else {
      // Paused together on one frame: players drift a little while playing.
      const lead = leader(videos);
      videos.forEach((v) => v.pause());
      seekAll(videos, lead.currentTime);
    }
  }

  function stepFrame(videos, direction) {
    if (!videos.length) return;
    const fps = Number(videos[0].dataset.fps) || 24;
    videos.forEach((v) => v.pause());
    seekAll(videos, leader(videos).currentTime + direction / fps);
  }

  function wireGroup(group) {
    if (group.dataset.syncWired) return;
    group.dataset.syncWired = "1";
    const toggle = group.querySelector("[data-sync-toggle]");
    const seek = group.querySelector("[data-sync-seek]");
    const time = group.querySelector("[data-sync-time]");
    const refresh = () => {
      const videos = videosOf(group);
      const playing = videos.some((v) => !v.paused);
      if (toggle) toggle.textContent = playing ? "Pause all" : "Play all";
      if (!videos.length) return;
      const lead = leader(videos);
      if (seek && lead.duration) seek.max = lead.duration;
      if (seek && document.activeElement !== seek) seek.value = lead.currentTime;
      if (time) time.textContent = clock(lead.currentTime);
    };
    if (toggle) toggle.addEventListener("click", () => { togglePlay(videosOf(group)); refresh(); });
    if (seek) seek.addEventListener("input", () => {
      seekAll(videosOf(group), Number(seek.value));
      if (time) time.textContent = clock(Number(seek.value));
    });
    // Media events don't bubble; capture them on the group, whichever video sent them.
    ["play", "pause", "timeupdate", "loadedmetadata", "ended"].forEach((name) =>
      group.addEventListener(name, (event) => {
        const videos = videosOf(group);
        const lead = leader(videos);
        if (name === "timeupdate" && event.target === lead && !lead.paused) {
          // Keep the others in step: a drift over ~2 frames is corrected.
          videos.forEach((v) => {
            if (v !== lead && !v.paused && v.currentTime < (v.duration || 0) - 0.05 &&
                Math.abs(v.currentTime - lead.currentTime) > 0.08) {
              v.currentTime = lead.currentTime;
            }
          });
        }
        if (name === "ended" && event.target === lead) videos.forEach((v) => v.pause());
        refresh();
      }, true));
    refresh();
  }

  // The videos the keyboard acts on: the page's sync group, else the open result view.
  function keyboardVideos() {
    const group = document.querySelector("[data-sync-group]");
    if (group) return videosOf(group);
    const compare = document.querySelector("[data-panel=compare]:not([hidden]) [data-compare]");
    if (compare) return Array.from(compare.querySelectorAll("video"));
    return Array.from(document.querySelectorAll("#result-video"));
  }

  // Where a key is the user's typing, or Space is the focused control's own (a button's
  // click), it is left alone; elsewhere (a button just clicked, a slider, the page) the
  // keys drive the players.
  const TYPING = "textarea, select, [contenteditable], " +
    "input:not([type=range]):not([type=checkbox]):not([type=radio]):not([type=button]):not([type=submit])";
  const SPACE_IS_ITS_OWN = "button, a, summary, input[type=checkbox], input[type=radio], input[type=button], input[type=submit]";

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    const keys = { " ": 0, ",": -1, ".": 1 };
    if (!(event.key in keys) || !target.closest) return;
    if (target.closest(TYPING)) return;
    if (event.key === " " && target.closest(SPACE_IS_ITS_OWN)) return;
    const videos = keyboardVideos();
    if (!videos.length) return;
    event.preventDefault();
    if (event.key === " ") togglePlay(videos); else stepFrame(videos, keys[event.key]);
  });

  const wireAll = () => document.querySelectorAll("[data-sync-group]").forEach(wireGroup);
  document.addEventListener("DOMContentLoaded", wireAll);
  document.addEventListener("htmx:load", wireAll);
})();
