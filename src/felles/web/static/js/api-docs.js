// Starts Swagger UI on the API docs page (a file, so the CSP needs no inline script).
window.addEventListener("DOMContentLoaded", function () {
  var target = document.getElementById("swagger-ui");
  if (!target || !window.SwaggerUIBundle) return;
  window.SwaggerUIBundle({ url: target.dataset.spec, domNode: target, deepLinking: true });
});
