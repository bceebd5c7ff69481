// portscope serve: live regions and kill confirmation. Hand-written, no dependencies.
// A live region names its Server-Sent Events stream in data-live; each "update" event
// carries the region's new HTML, rendered (and escaped) by the server's templates.
"use strict";

function connectLive(region) {
  const status = document.getElementById("live-status");
  const source = new EventSource(region.dataset.live);
  source.addEventListener("update", (event) => {
    region.innerHTML = event.data;
    if (status) {
      status.textContent = "live · " + new Date().toLocaleTimeString();
    }
  });
  source.addEventListener("open", () => {
    if (status) {
      status.textContent = "live";
    }
  });
  source.addEventListener("error", () => {
    if (status) {
      status.textContent = "reconnecting…";
    }
  });
}

function confirmKills() {
  for (const button of document.querySelectorAll("button[data-confirm]")) {
    button.addEventListener("click", (event) => {
      if (!window.confirm(button.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-live]")) {
    connectLive(region);
  }
  confirmKills();
});
