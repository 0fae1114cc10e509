// The share panel (runs/share_links.html): a Copy button beside each link, and the
// sentence under the form follows the chosen expiry. Without it, the link can be selected
// and copied by hand and the sentence names the default expiry.
(function () {
  "use strict";
  // The panel is swapped in by htmx, which runs this file again each time: wire once.
  if (window.__sharingWired) return;
  window.__sharingWired = true;

  function reveal() {
    if (!navigator.clipboard) return; // only on https or localhost
    document.querySelectorAll("[data-copy-link]").forEach((button) => { button.hidden = false; });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-copy-link]");
    if (!button) return;
    const input = button.parentElement.querySelector(".share-url");
    navigator.clipboard.writeText(input.value).then(
      () => {
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      },
      () => input.select(),
    );
  });

  document.addEventListener("change", (event) => {
    const select = event.target.closest("[data-share-create] select");
    if (!select) return;
    const until = select.form.querySelector("[data-share-until]");
    until.textContent = select.selectedOptions[0].dataset.until;
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", reveal);
  else reveal();
  document.addEventListener("htmx:afterSettle", reveal);
})();
