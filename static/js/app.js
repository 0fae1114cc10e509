// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function usd(micros) {
    return "$" + (micros / 1e6).toFixed(3);
  }

  // The estimate counts every run the form will make: (prompt + each Variants line) ×
  // (the duration + each ticked "Also at") × repeats, as runs/batches.py plans them.
  function wireEstimate(root) {
    const out = root.querySelector("#estimate");
    if (!out) return;
    const form = out.closest("form");
    const select = root.querySelector("#" + out.dataset.durationFrom);
    const variants = root.querySelector("#" + out.dataset.variantsFrom);
    const repeat = root.querySelector("#" + out.dataset.repeatFrom);
    const price = Number(out.dataset.priceMicros);
    const maxRuns = Number(out.dataset.maxRuns) || Infinity;
    const update = () => {
      const durations = new Set([Number(select.value)]);
      form.querySelectorAll("input[name=more_durations]:checked").forEach((box) => durations.add(Number(box.value)));
      const prompts = 1 + (variants ? variants.value.split("\n").filter((line) => line.trim()).length : 0);
      const times = repeat ? Number(repeat.value) || 1 : 1;
      let seconds = 0;
      durations.forEach((d) => { seconds += d; });
      const runs = prompts * durations.size * times;
      const cost = usd(price * seconds * prompts * times);
      out.textContent = runs > 1 ? runs + " runs · " + cost : cost;
      out.classList.toggle("over", runs > maxRuns);
      const button = form.querySelector("button[type=submit]");
      if (button) button.textContent = runs > 1 ? "Generate " + runs + " runs" : "Generate";
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
  }

  function wireCounter(root) {
    root.querySelectorAll("[data-count-for]").forEach((counter) => {
      const field = root.querySelector("#" + counter.dataset.countFor);
      if (!field) return;
      const update = () => { counter.textContent = field.value.length.toLocaleString(); };
      field.addEventListener("input", update);
      update();
    });
  }

  function wireDropzone(root) {
    root.querySelectorAll("[data-dropzone]").forEach((zone) => {
      const input = zone.querySelector("input[type=file]");
      // The limit comes from the page (the server's one source), said as the server says it.
      const maxBytes = Number(zone.dataset.maxBytes);
      // Say at once when a file is over the limit, instead of after uploading it.
      input.addEventListener("change", () => {
        const file = input.files[0];
        const tooBig = file && file.size > maxBytes;
        input.setCustomValidity(tooBig ? "This file is " + (file.size / 1048576).toFixed(1) +
          " MB; the limit is " + zone.dataset.maxLabel + "." : "");
        if (tooBig) input.reportValidity();
      });
      ["dragenter", "dragover"].forEach((name) => zone.addEventListener(name, (event) => {
        event.preventDefault();
        zone.classList.add("dragging");
      }));
      ["dragleave", "drop"].forEach((name) => zone.addEventListener(name, () => zone.classList.remove("dragging")));
      zone.addEventListener("drop", (event) => {
        event.preventDefault();
        if (event.dataTransfer.files.length) {
          input.files = event.dataTransfer.files;
          input.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
    });
  }

  function clock(seconds) {
    const m = Math.floor(seconds / 60);
    const s = (seconds % 60).toFixed(1).padStart(4, "0");
    return m + ":" + s;
  }

  // Result / Side by side / Wipe: one pair of videos driven by one control.
  function wireCompare(root) {
    root.querySelectorAll("[data-tabs]").forEach((tabs) => {
      if (tabs.dataset.wired) return;
      tabs.dataset.wired = "1";
      const card = tabs.parentElement;
      const player = card.querySelector("[data-panel=player]");
      const panel = card.querySelector("[data-panel=compare]");
      const box = panel.querySelector("[data-compare]");
      const ref = box.querySelector("[data-role=reference]");
      const res = box.querySelector("[data-role=result]");
      const toggle = panel.querySelector("[data-role=toggle]");
      const seek = panel.querySelector("[data-role=seek]");
      const time = panel.querySelector("[data-role=time]");
      const wipe = box.querySelector("[data-role=wipe]");
      const both = [res, ref];

      const syncTo = (t) => both.forEach((v) => {
        v.currentTime = Math.min(t, Math.max(0, (v.duration || t) - 0.01));
      });
      const pauseAll = () => both.forEach((v) => v.pause());

      tabs.querySelectorAll("[data-view]").forEach((tab) => tab.addEventListener("click", () => {
        const view = tab.dataset.view;
        tabs.querySelectorAll("[data-view]").forEach((t) => t.setAttribute("aria-selected", String(t === tab)));
        player.hidden = view !== "player";
        panel.hidden = view === "player";
        box.classList.toggle("side", view === "side");
        box.classList.toggle("wipe", view === "wipe");
        if (view === "player") pauseAll(); else card.querySelector("#result-video").pause();
      }));
      toggle.addEventListener("click", () => {
        if (res.paused) {
          syncTo(res.currentTime);
          both.forEach((v) => v.play().catch(() => {}));
        } else {
          pauseAll();
        }
      });
      res.addEventListener("play", () => { toggle.textContent = "Pause both"; });
      res.addEventListener("pause", () => { toggle.textContent = "Play both"; });
      res.addEventListener("ended", pauseAll);
      res.addEventListener("loadedmetadata", () => { seek.max = res.duration; });
      res.addEventListener("timeupdate", () => {
        seek.value = res.currentTime;
        time.textContent = clock(res.currentTime);
        // Keep the reference in step; a drift over a frame or two is corrected.
        if (!res.paused && ref.currentTime < (ref.duration || 0) - 0.05 &&
            Math.abs(ref.currentTime - res.currentTime) > 0.1) {
          ref.currentTime = res.currentTime;
        }
      });
      seek.addEventListener("input", () => {
        syncTo(Number(seek.value));
        time.textContent = clock(Number(seek.value));
      });
      const applyWipe = () => { res.style.clipPath = "inset(0 0 0 " + wipe.value + "%)"; };
      wipe.addEventListener("input", applyWipe);
      applyWipe();
    });
  }

  // The live card's elapsed clock ticks here; the server sends when the run started.
  function tickClocks() {
    const now = Date.now() / 1000;
    document.querySelectorAll("[data-since]").forEach((el) => {
      const seconds = Math.max(0, Math.floor(now - Number(el.dataset.since)));
      const h = Math.floor(seconds / 3600);
      const m = Math.floor((seconds % 3600) / 60);
      const s = String(seconds % 60).padStart(2, "0");
      el.textContent = h ? h + ":" + String(m).padStart(2, "0") + ":" + s : m + ":" + s;
    });
  }
  setInterval(tickClocks, 1000);
  document.addEventListener("htmx:afterSwap", tickClocks);

  function wire(root) {
    wireEstimate(root);
    wireCounter(root);
    wireDropzone(root);
    wireCompare(root);
  }

  document.addEventListener("DOMContentLoaded", () => wire(document));
  document.addEventListener("htmx:afterSwap", (event) => wire(event.detail.elt.parentElement || document));
  document.addEventListener("htmx:oobAfterSwap", (event) => wire(event.detail.target || document));

  // Ctrl+Enter (⌘+Enter on a Mac) submits the form being typed in, as chat boxes do.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || !(event.ctrlKey || event.metaKey)) return;
    const form = event.target.closest && event.target.closest("form");
    if (!form || !form.matches("#generate-form")) return;
    event.preventDefault();
    form.requestSubmit();
  });

  // Upload progress for the Generate form (htmx reports XHR upload progress).
  document.addEventListener("htmx:xhr:progress", (event) => {
    const bar = document.getElementById("upload-progress");
    const label = document.getElementById("upload-percent");
    if (!bar || !event.detail.lengthComputable) return;
    const percent = Math.round((event.detail.loaded / event.detail.total) * 100);
    bar.hidden = false;
    label.hidden = false;
    bar.value = percent;
    label.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking the video…";
  });
})();
