// A refused file's error report travels in the page (nothing of the file is stored): this turns
// it into a CSV download. Without JavaScript the link stays hidden and the page says so.
(() => {
  const link = document.getElementById("report-download");
  const source = link && document.getElementById(link.dataset.source);
  if (!source) return;
  link.href = URL.createObjectURL(new Blob([source.value], { type: "text/csv;charset=utf-8" }));
  link.hidden = false;
})();
