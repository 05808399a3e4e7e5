// Starts Swagger UI on /docs. A file of its own, not an inline script, so a strict CSP (script-src 'self') holds.
window.addEventListener("load", function () {
  var root = document.getElementById("openapi");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    configUrl: root.dataset.config,
    dom_id: "#openapi",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
});
