/* Small enhancements only: every page works without this file. */
(function () {
  "use strict";
  // A double tap sends a form once: the button is disabled after the first submit.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset.sent) { e.preventDefault(); return; }
    form.dataset.sent = "1";
    var buttons = form.querySelectorAll("button[type=submit],button:not([type])");
    // Disabled after the form data is built, so the pressed button's name and value still go.
    setTimeout(function () { for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; } }, 0);
    setTimeout(function () { delete form.dataset.sent; for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = false; } }, 8000);
  }, true);
})();
