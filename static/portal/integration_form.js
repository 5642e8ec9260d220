// The new-integration form: show the chosen protocol's fields, and the vendor's fields only
// for an outbound integration. Without this script every fieldset shows; only the chosen
// protocol's is read.
const form = document.getElementById("integration-create");
if (form) {
  const update = () => {
    const direction = form.querySelector("input[name=direction]:checked")?.value || "inbound";
    const protocol = form.querySelector("select[name=protocol]")?.value;
    for (const el of form.querySelectorAll(".protocol-fields")) el.hidden = el.dataset.protocol !== protocol;
    for (const el of document.querySelectorAll("[data-direction]")) el.hidden = el.dataset.direction !== direction;
    const endpoint = document.getElementById("field-endpoint_url");
    if (endpoint) endpoint.hidden = direction !== "outbound";
  };
  form.addEventListener("change", update);
  update();
}
