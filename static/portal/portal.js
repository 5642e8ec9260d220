// Small progressive enhancements; every page works without them.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const done = () => { button.textContent = "Copied"; setTimeout(() => (button.textContent = "Copy"), 1500); };
  // Where the clipboard API is missing or refused, select the text and copy the old way,
  // so that at worst the user presses Ctrl-C on a selection.
  const selectAndCopy = () => {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (document.execCommand("copy")) done();
    else button.textContent = "Selected: press Ctrl-C";
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent.trim()).then(done, selectAndCopy);
  } else {
    selectAndCopy();
  }
});

// Forms marked data-confirm ask before a destructive action.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// The new-integration form shows the vendor's fields only when the integration is outbound.
for (const form of document.querySelectorAll("form[data-outbound-only]")) {
  const update = () => {
    const direction = form.querySelector("input[name=direction]:checked")?.value || "inbound";
    for (const el of form.querySelectorAll(form.dataset.outboundOnly)) el.hidden = direction !== "outbound";
    for (const el of document.querySelectorAll("[data-direction]")) el.hidden = el.dataset.direction !== direction;
  };
  form.addEventListener("change", update);
  update();
}

// On a phone the top bar's menu folds behind a button (portal.css). Without this script the
// button stays hidden and the menu stays open.
for (const button of document.querySelectorAll("button.menu-toggle[aria-controls]")) {
  const menu = document.getElementById(button.getAttribute("aria-controls"));
  if (!menu) continue;
  const open = (yes) => button.setAttribute("aria-expanded", String(yes));
  button.hidden = false;
  button.addEventListener("click", () => open(button.getAttribute("aria-expanded") !== "true"));
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { open(false); button.focus(); }
  });
  button.addEventListener("keydown", (event) => { if (event.key === "Escape") open(false); });
}
