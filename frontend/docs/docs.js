// Swagger UI over the three services' OpenAPI documents, as the proxy
// serves them. "Try it out" sends each request to the service's own prefix
// (/auth, /users, /items) on this origin, and a token from the login form
// above (or the web app's session) answers the documents' bearer scheme.
(function () {
  "use strict";

  const SERVICES = [
    { prefix: "/auth", name: "auth service" },
    { prefix: "/users", name: "users service" },
    { prefix: "/items", name: "items service" },
  ];
  const SCHEME = "bearer";
  const APP_TOKEN_KEY = "access_token";
  const LOGIN_URL = "/auth/api/v1/login/access-token";

  let token = null;
  let tokenSource = "";

  const ui = SwaggerUIBundle({
    urls: SERVICES.map((s) => ({ url: `${s.prefix}/openapi.json`, name: s.name })),
    dom_id: "#swagger-ui",
    // Deep links put a link inside each operation's toggle button, which
    // screen readers cannot use; the operations are found by the list.
    deepLinking: false,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl, keepTokenAcrossDocuments],
    layout: "StandaloneLayout",
    validatorUrl: null,
    requestInterceptor: toServicePrefix,
    onComplete: applyToken,
  });

  /** The documents name paths as each service sees them; through the
   * proxy they live under the service's prefix. */
  function toServicePrefix(request) {
    if (request.loadSpec) return request;
    const current = ui.specSelectors.url() || "";
    const service = SERVICES.find((s) => current.startsWith(`${s.prefix}/`));
    const url = new URL(request.url, window.location.href);
    if (service && url.origin === window.location.origin && !url.pathname.startsWith(`${service.prefix}/`)) {
      url.pathname = service.prefix + url.pathname;
      request.url = url.toString();
    }
    return request;
  }

  /** A plugin: each document loaded gets the token again. */
  function keepTokenAcrossDocuments() {
    return {
      statePlugins: {
        spec: {
          wrapActions: {
            updateJsonSpec: (original) => (...args) => {
              const result = original(...args);
              window.setTimeout(applyToken, 0);
              return result;
            },
          },
        },
      },
    };
  }

  function applyToken() {
    if (token) ui.preauthorizeApiKey(SCHEME, token);
  }

  const form = document.getElementById("docs-login-form");
  const state = document.getElementById("docs-login-state");
  const logout = document.getElementById("docs-logout");

  function show(message, isError) {
    state.textContent = message;
    state.className = isError ? "docs-error" : "";
  }

  function useToken(value, source) {
    token = value;
    tokenSource = source;
    applyToken();
    form.hidden = true;
    logout.hidden = false;
    show(`Authorized as ${source}: requests sent with "Try it out" carry this token.`, false);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const email = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!email || !password) {
      show("Enter your email and password.", true);
      return;
    }
    show("Logging in…", false);
    try {
      const response = await fetch(LOGIN_URL, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ username: email, password }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok || typeof body.access_token !== "string") {
        const detail = typeof body.detail === "string" ? body.detail : `status ${response.status}`;
        show(`Could not log in: ${detail}.`, true);
        return;
      }
      form.elements.password.value = "";
      useToken(body.access_token, email);
    } catch {
      show("Could not reach the server.", true);
    }
  });

  logout.addEventListener("click", () => {
    token = null;
    ui.authActions.logout([SCHEME]);
    form.hidden = false;
    logout.hidden = true;
    show(`The token of ${tokenSource} is no longer used.`, false);
  });

  // Someone signed in to the web app may try the API as themself at once.
  const appToken = window.localStorage.getItem(APP_TOKEN_KEY);
  if (appToken) useToken(appToken, "your signed-in session");
})();
