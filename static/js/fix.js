// "Fix it": the segment picker, the dialog on the Generate page, and a draft of the form.
// Every part works without this file: the fix page and its links are plain HTML.
(function () {
  "use strict";

  const DRAFT_KEY = "playground.generate-draft";
  // Not part of a draft: one-time keys, and the reference (a fix picks its own).
  const NOT_DRAFTED = new Set(["csrfmiddlewaretoken", "idempotency_key", "reference", "parent"]);

  // --- The segment picker: two range inputs (in, out) on one track ---------------------

  function wireTrim(root) {
    root.querySelectorAll("[data-trim]").forEach((trim) => {
      if (trim.dataset.wired) return;
      trim.dataset.wired = "1";
      const start = trim.querySelector("input[name=start]");
      const end = trim.querySelector("input[name=end]");
      const min = Number(trim.dataset.min);
      const max = Number(trim.dataset.max);
      const duration = Number(trim.dataset.duration);
      const fill = trim.querySelector("[data-trim-fill]");
      const panel = trim.closest("[data-fix-panel]") || document;
      const video = panel.querySelector("video[data-fix-video]");
      const tenth = (value) => Math.round(value * 10) / 10;

      const show = () => {
        const a = Number(start.value);
        const b = Number(end.value);
        trim.querySelector("[data-trim-start]").textContent = a.toFixed(1) + " s";
        trim.querySelector("[data-trim-end]").textContent = b.toFixed(1) + " s";
        trim.querySelector("[data-trim-length]").textContent = (b - a).toFixed(1) + " s";
        fill.style.left = (100 * a / duration) + "%";
        fill.style.right = (100 - 100 * b / duration) + "%";
      };

      // The handle being moved goes where it is put; the other one follows to keep the
      // segment min–max s long (and inside the video).
      const keep = (moved) => {
        let a = Number(start.value);
        let b = Number(end.value);
        if (moved === start) {
          if (b - a < min) b = Math.min(duration, a + min);
          if (b - a > max) b = a + max;
          if (b - a < min) a = b - min;
        } else {
          if (b - a < min) a = Math.max(0, b - min);
          if (b - a > max) a = b - max;
          if (b - a < min) b = a + min;
        }
        start.value = String(tenth(Math.max(0, a)));
        end.value = String(tenth(Math.min(duration, b)));
      };

      const seek = (seconds) => {
        if (!video) return;
        video.pause();
        if (video.readyState >= 1) video.currentTime = Math.min(seconds, video.duration || seconds);
      };

      [start, end].forEach((input) => input.addEventListener("input", () => {
        keep(input);
        show();
        seek(Number(input.value));
      }));
      if (video) {
        // Played, the video keeps to the segment.
        video.addEventListener("play", () => {
          if (video.currentTime < Number(start.value) || video.currentTime >= Number(end.value)) {
            video.currentTime = Number(start.value);
          }
        });
        video.addEventListener("timeupdate", () => {
          if (!video.paused && video.currentTime >= Number(end.value)) {
            video.pause();
            video.currentTime = Number(start.value);
          }
        });
      }
      show();
    });
  }

  // --- The dialog on the Generate page --------------------------------------------------

  function dialog() {
    return document.getElementById("fix-dialog");
  }

  // Opening the fix and polling its progress are not uploads: keep their requests from
  // the form's upload bar (app.js listens for every htmx request's progress).
  document.addEventListener("htmx:xhr:progress", (event) => {
    if (event.target.closest && event.target.closest("#fix-dialog, [data-fix-open]")) {
      event.stopPropagation();
    }
  }, true);

  document.addEventListener("htmx:afterSwap", (event) => {
    wireTrim(document);
    const box = dialog();
    if (box && event.detail.target.id === "fix-dialog-body" && !box.open) box.showModal();
  });

  // "Use this clip": pick the copy in the form, leave everything typed as it is.
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-use-reference]");
    const form = document.getElementById("generate-form");
    if (!link || !form || !link.closest("#fix-dialog")) return;
    const select = form.querySelector("select[name=reference]");
    if (!select) return;  // the plain link: the draft below brings the prompt back
    event.preventDefault();
    const code = link.dataset.useReference;
    let option = Array.from(select.options).find((o) => o.value === code);
    if (!option) {
      option = new Option(link.dataset.referenceLabel, code);
      select.add(option, 1);  // after "upload a new one"
    }
    select.value = code;
    select.dispatchEvent(new Event("change", { bubbles: true }));
    const file = form.querySelector("input[name=reference_video]");
    if (file) file.value = "";
    // The error that offered the fix is answered.
    form.querySelectorAll("[data-fix-open]").forEach((a) => a.closest(".errors").remove());
    dialog().close();
    select.focus();
  });

  // --- A draft of the Generate form, in case the page is left for the fix page --------

  function draftFields(form) {
    return Array.from(form.elements).filter((el) =>
      el.name && !NOT_DRAFTED.has(el.name) && el.type !== "file" && el.type !== "hidden" &&
      el.type !== "submit" && el.type !== "button");
  }

  function saveDraft(form) {
    const fields = draftFields(form);
    const draft = fields.map((el) =>
      [el.name, el.type === "checkbox" || el.type === "radio" ? (el.checked ? el.value : null) : el.value]);
    if (!form.elements.prompt || !form.elements.prompt.value.trim()) return;
    try { sessionStorage.setItem(DRAFT_KEY, JSON.stringify(draft)); } catch (e) { /* private mode */ }
  }

  function restoreDraft(form) {
    let draft;
    try { draft = JSON.parse(sessionStorage.getItem(DRAFT_KEY) || "null"); } catch (e) { draft = null; }
    if (!Array.isArray(draft)) return;
    const fields = draftFields(form);
    fields.forEach((el) => {
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = draft.some(([name, value]) => name === el.name && value === el.value);
      }
    });
    draft.forEach(([name, value]) => {
      const el = fields.find((f) => f.name === name && f.type !== "checkbox" && f.type !== "radio");
      if (el && value !== null) el.value = value;
    });
    fields.forEach((el) => el.dispatchEvent(new Event("input", { bubbles: true })));
  }

  ["input", "change"].forEach((name) => document.addEventListener(name, (event) => {
    const form = event.target.form;
    if (form && form.id === "generate-form") saveDraft(form);
  }));

  // A run was made: the draft is spent.
  document.addEventListener("htmx:beforeOnLoad", (event) => {
    const xhr = event.detail.xhr;
    if (event.detail.elt.id === "generate-form" && xhr && xhr.getResponseHeader("HX-Redirect")) {
      sessionStorage.removeItem(DRAFT_KEY);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    wireTrim(document);
    const form = document.getElementById("generate-form");
    // Only into an empty form: a remix or an error page comes with what it holds.
    if (form && form.elements.prompt && !form.elements.prompt.value) restoreDraft(form);
  });
})();
