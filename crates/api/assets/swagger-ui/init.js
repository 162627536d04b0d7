// Kept out of index.html so the page runs under a Content-Security-Policy without 'unsafe-inline'.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
  });
};
