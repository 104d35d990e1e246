// Submit a form as soon as one of its `data-submit-on-change` fields changes (the dashboard's
// game picker). A file, not an inline handler: the Content-Security-Policy allows no inline script.
"use strict";
document.addEventListener("change", (event) => {
  if (event.target.matches("[data-submit-on-change]")) {
    event.target.form.submit();
  }
});
