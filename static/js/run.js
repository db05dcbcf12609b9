// The Run page: keeps the selected span marked in the tree, and on a narrow screen brings the
// detail panel (stacked below the tree) into view once it has loaded. The page works without it.
(function () {
  "use strict";

  function select(row) {
    document.querySelectorAll(".span-row.selected").forEach(function (el) {
      el.classList.remove("selected");
      el.removeAttribute("aria-current");
    });
    row.classList.add("selected");
    row.setAttribute("aria-current", "true");
  }

  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest(".span-row[hx-get]");
    if (row && !event.ctrlKey && !event.metaKey && !event.shiftKey) { select(row); }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var panel = event.detail && event.detail.target;
    if (panel && panel.id === "span-detail" && window.matchMedia("(max-width: 1100px)").matches) {
      panel.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  });
})();
