// The upload page follows processing and sending without a reload: it polls the upload's status
// (JSON) and fills in the fields marked data-field; for a file sent to a vendor the status also
// carries the call list, which replaces the page's (exchanges left open stay open). Times of the
// next attempt count down. When an inbound upload ends with errors the page is loaded once more,
// to show its error report.
(() => {
  const box = document.getElementById("upload-progress");
  if (!box || box.dataset.done === "true") return;
  const initial = box.dataset.status;
  let delay = 1000;

  const tick = () => {
    for (const el of document.querySelectorAll(".countdown[data-at]")) {
      const at = Date.parse(el.dataset.at);
      if (Number.isNaN(at)) { el.textContent = ""; continue; }
      const seconds = Math.round((at - Date.now()) / 1000);
      el.textContent = seconds > 0 ? `(in ${seconds} s)` : "(any moment now)";
    }
  };

  const showCalls = (html) => {
    const calls = document.getElementById("calls");
    if (!calls || calls.dataset.html === html) return;
    const open = new Set([...calls.querySelectorAll("details[open]")].map((d) => d.id));
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    if (!fresh) return;
    for (const id of open) fresh.querySelector(`#${CSS.escape(id)}`)?.setAttribute("open", "");
    fresh.dataset.html = html;
    calls.replaceWith(fresh);
    tick();
  };

  const show = (data) => {
    for (const el of box.querySelectorAll("[data-field]")) {
      const name = el.dataset.field;
      if (name === "bar") {
        el.style.width = `${data.percent}%`;
        el.parentElement.setAttribute("aria-valuenow", data.percent);
      } else if (name === "status_display") {
        el.textContent = data.status_display;
        el.className = `status status-${data.status}`;
      } else if (name === "seconds") {
        el.textContent = data.seconds === null ? "" : `${data.seconds.toFixed(2)} s`;
      } else if (name in data) {
        el.textContent = data[`${name}_display`] ?? data[name] ?? "";  // counts come formatted (12,480)
      }
    }
    if (typeof data.calls_html === "string") showCalls(data.calls_html);
  };

  const poll = async () => {
    try {
      const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        show(data);
        if (data.done) {
          box.dataset.done = "true";
          const more = data.errors || data.status === "failed" || box.dataset.reloadWhenDone === "true";
          if (data.status !== initial && more && typeof data.calls_html !== "string") window.location.reload();
          return;
        }
      }
    } catch (_) { /* the network blinked; try again */ }
    delay = Math.min(delay * 1.25, 5000);
    setTimeout(poll, delay);
  };
  tick();
  setInterval(tick, 1000);
  setTimeout(poll, 500);
})();
