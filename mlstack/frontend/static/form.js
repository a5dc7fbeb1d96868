// Show the browser's own checks (required, min, max, step) as messages next to each field,
// worded like the server's, before the form is sent. Without JavaScript the server says the same.
(function () {
  "use strict";
  function message(input) {
    var v = input.validity;
    var label = document.querySelector('label[for="' + input.id + '"]');
    var name = label ? label.firstChild.textContent.trim() : input.name;
    if (v.valueMissing) return name + " is required";
    if (v.badInput) return name + " must be a number";
    if (v.rangeUnderflow || v.rangeOverflow || v.stepMismatch) return name + " " + (input.dataset.rule || "is out of range");
    return "";
  }
  function show(input) {
    var text = message(input);
    var out = document.getElementById("e-" + input.name);
    var field = input.closest(".field");
    if (out) { out.textContent = text; out.hidden = !text; }
    if (field) field.classList.toggle("invalid", !!text);
    if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    return !text;
  }
  document.querySelectorAll("form[data-validate]").forEach(function (form) {
    var inputs = form.querySelectorAll("input:not([type=hidden]), select");
    inputs.forEach(function (input) {
      input.addEventListener("blur", function () { show(input); });
      input.addEventListener("input", function () { if (input.getAttribute("aria-invalid")) show(input); });
    });
    form.addEventListener("submit", function (event) {
      var first = null;
      inputs.forEach(function (input) { if (!show(input) && !first) first = input; });
      if (first) { event.preventDefault(); first.focus(); }
    });
  });
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
