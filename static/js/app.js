// Small progressive enhancements; every page works without them.
(function () {
  "use strict";

  function usd(micros) {
    return "$" + (micros / 1e6).toFixed(3);
  }

  function wireEstimate(root) {
    const out = root.querySelector("#estimate");
    if (!out) return;
    const select = root.querySelector("#" + out.dataset.durationFrom);
    const price = Number(out.dataset.priceMicros);
    const update = () => { out.textContent = usd(price * Number(select.value)); };
    select.addEventListener("change", update);
    select.addEventListener("input", update);
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

  function wire(root) {
    wireEstimate(root);
    wireCounter(root);
    wireDropzone(root);
  }

  document.addEventListener("DOMContentLoaded", () => wire(document));
  document.addEventListener("htmx:afterSwap", (event) => wire(event.detail.elt.parentElement || document));

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
