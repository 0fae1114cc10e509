// The Generate form's prompt box and reference images: insert @Video1 / @ImageN at the
// cursor, warn about a citation of an image that isn't attached, fill the box from a recent
// prompt, and show the images chosen (uploads previewed in the browser, before sending).
// Progressive enhancement: without it the form posts the same fields, and the server makes
// the same checks (runs/forms.py, runs/images.py).
(function () {
  "use strict";

  const CITATION = /@image(\d+)/gi;

  // The same words as runs/images.py citation_problem, so the page and the server agree.
  function citationProblem(prompt, attached) {
    let cited = 0;
    for (const match of prompt.matchAll(CITATION)) cited = Math.max(cited, Number(match[1]));
    if (cited <= attached) return "";
    const have = attached === 0 ? "no images are attached"
      : attached === 1 ? "only 1 image is attached"
      : "only " + attached + " images are attached";
    return "The prompt cites @Image" + cited + ", but " + have + ".";
  }

  function insertAtCursor(field, token, maxChars) {
    const start = field.selectionStart ?? field.value.length;
    const end = field.selectionEnd ?? start;
    const before = field.value.slice(0, start);
    const after = field.value.slice(end);
    // A token glued to a word would not read as a citation: keep spaces around it.
    const text = (before && !/\s$/.test(before) ? " " : "") + token +
      (after && !/^\s/.test(after) ? " " : "");
    if (field.value.length - (end - start) + text.length > maxChars) return;
    field.focus();
    field.setRangeText(text, start, end, "end");
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function wire(form) {
    if (form.dataset.promptWired) return;
    form.dataset.promptWired = "1";
    const box = form.querySelector("[data-prompt-box]");
    const field = box && box.querySelector("textarea");
    if (!field) return;
    const maxChars = Number(box.dataset.maxChars);
    const countBox = box.querySelector("[data-count-box]");
    const warning = box.querySelector("[data-citation-warning]");
    const images = form.querySelector("[data-images]");
    const fileInput = images && images.querySelector("input[type=file]");
    const previews = images && images.querySelector("[data-image-previews]");
    const maxCount = images ? Number(images.dataset.maxCount) : 0;

    const picks = () => images ? [...images.querySelectorAll(".image-pick input[type=checkbox]:checked")] : [];
    const files = () => fileInput && fileInput.files ? [...fileInput.files] : [];
    const attached = () => picks().length + files().length;

    // @Image numbers as the server gives them: library picks in page order, then uploads.
    function renumber() {
      images.querySelectorAll(".image-pick").forEach((pick) => {
        const tag = pick.querySelector("[data-image-tag]");
        const n = picks().indexOf(pick.querySelector("input")) + 1;
        tag.textContent = n ? "@Image" + n : "";
      });
      previews.querySelectorAll("[data-preview-tag]").forEach((tag, i) => {
        tag.textContent = "@Image" + (picks().length + i + 1);
      });
    }

    function update() {
      const length = field.value.length;
      countBox.classList.toggle("near", length > maxChars * 0.9 && length <= maxChars);
      countBox.classList.toggle("over", length > maxChars);
      const count = attached();
      box.querySelectorAll("[data-image-button]").forEach((button) => {
        button.hidden = Number(button.dataset.imageButton) > count;
      });
      const problem = citationProblem(field.value, count);
      // The server's own error (after a post) already says it: don't say it twice.
      const serverSays = box.querySelector(".errors");
      warning.textContent = problem;
      warning.hidden = !problem || Boolean(serverSays && serverSays.textContent.includes(problem));
      if (images) {
        renumber();
        const tooMany = count > maxCount;
        fileInput.setCustomValidity(tooMany ? "A run takes at most " + maxCount +
          " images; you attached " + count + "." : fileProblems().join(" "));
      }
    }

    // What the browser can tell before sending (the server checks every limit again).
    const checked = new WeakMap();
    function fileProblems() {
      return files().map((file) => checked.get(file) || "").filter(Boolean);
    }

    function showPreviews() {
      previews.querySelectorAll("img").forEach((img) => URL.revokeObjectURL(img.src));
      previews.replaceChildren();
      const maxBytes = Number(images.dataset.maxBytes);
      const minSide = Number(images.dataset.minSide);
      files().forEach((file) => {
        const figure = document.createElement("figure");
        figure.className = "image-preview";
        const img = document.createElement("img");
        const caption = document.createElement("figcaption");
        const tag = document.createElement("strong");
        tag.dataset.previewTag = "";
        caption.append(tag, " " + file.name);
        figure.append(img, caption);
        previews.append(figure);
        const refuse = (message) => {
          checked.set(file, message);
          const note = document.createElement("span");
          note.className = "errors";
          note.textContent = message;
          caption.append(note);
          update();
        };
        if (!["image/jpeg", "image/png"].includes(file.type)) {
          refuse("“" + file.name + "” is not a JPEG or PNG image.");
          return;
        }
        if (file.size > maxBytes) {
          refuse("“" + file.name + "” is " + (file.size / 1048576).toFixed(1) + " MB; each image may be at most " + images.dataset.maxLabel + ".");
          return;
        }
        img.onload = () => {
          const w = img.naturalWidth, h = img.naturalHeight;
          if (Math.min(w, h) < minSide) refuse("“" + file.name + "” is " + w + "×" + h + " px; each side must be at least " + minSide + " px.");
          else if (w / h > 2.5 || h / w > 2.5) refuse("“" + file.name + "” is " + w + "×" + h + " px; its aspect ratio must be between 1:2.5 and 2.5:1.");
        };
        img.alt = file.name;
        img.src = URL.createObjectURL(file);
      });
      update();
    }

    field.addEventListener("input", update);
    box.querySelectorAll("[data-insert]").forEach((button) => {
      // Keep the caret where it was: a click would otherwise move focus off the box.
      button.addEventListener("mousedown", (event) => event.preventDefault());
      button.addEventListener("click", () => insertAtCursor(field, button.dataset.insert, maxChars));
    });
    box.querySelectorAll("[data-fill-prompt]").forEach((button) => {
      button.addEventListener("click", () => {
        field.value = button.nextElementSibling.content.textContent;
        field.focus();
        field.setSelectionRange(field.value.length, field.value.length);
        field.dispatchEvent(new Event("input", { bubbles: true }));
        button.closest("details").open = false;
      });
    });
    if (images) {
      images.addEventListener("change", (event) => {
        if (event.target === fileInput) showPreviews(); else update();
      });
      ["dragenter", "dragover"].forEach((name) => images.addEventListener(name, (event) => {
        event.preventDefault();
        images.classList.add("dragging");
      }));
      ["dragleave", "drop"].forEach((name) => images.addEventListener(name, () => images.classList.remove("dragging")));
      images.addEventListener("drop", (event) => {
        event.preventDefault();
        if (event.dataTransfer.files.length) {
          fileInput.files = event.dataTransfer.files;
          showPreviews();
        }
      });
    }
    box.querySelector("[data-cite-buttons]").hidden = false;
    if (images && files().length) showPreviews(); else update();
  }

  function wireAll(root) {
    const scope = root && root.querySelectorAll ? root : document;
    if (scope.matches && scope.matches("#generate-form")) wire(scope);
    scope.querySelectorAll("#generate-form").forEach(wire);
  }

  document.addEventListener("DOMContentLoaded", () => wireAll(document));
  // The form posts through htmx and comes back re-rendered on errors: wire the new one.
  document.addEventListener("htmx:load", (event) => wireAll(event.detail.elt));
  document.addEventListener("htmx:afterSwap", () => wireAll(document));
})();
