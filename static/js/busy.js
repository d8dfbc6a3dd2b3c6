// A form with data-busy-text shows it and disables its button once submitted, so that a
// long import is not sent twice and the user sees that it is running.
document.querySelectorAll("form[data-busy-text]").forEach(function (form) {
  form.addEventListener("submit", function () {
    var status = form.querySelector(".busy-status");
    if (status) { status.textContent = form.getAttribute("data-busy-text"); }
    form.querySelectorAll("button[type=submit]").forEach(function (b) {
      // Disabled after the submission has been collected, so the request is still sent.
      setTimeout(function () { b.disabled = true; }, 0);
    });
  });
});
