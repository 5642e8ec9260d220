// The upload page follows processing without a reload: it polls the upload's status (JSON)
// and fills in the fields marked data-field. When the upload is done, the page is loaded
// once more if the finished page has more to show: errors and buttons, or (pages marked
// data-reload-when-done: a file sent to a vendor) the calls it made.
(() => {
  const box = document.getElementById("upload-progress");
  if (!box || box.dataset.done === "true") return;
  const initial = box.dataset.status;
  let delay = 1000;

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
        el.textContent = data[name] ?? "";
      }
    }
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
          if (data.status !== initial && more) window.location.reload();
          return;
        }
      }
    } catch (_) { /* the network blinked; try again */ }
    delay = Math.min(delay * 1.25, 5000);
    setTimeout(poll, delay);
  };
  setTimeout(poll, 500);
})();
