import nextVitals from "eslint-config-next/core-web-vitals";
import nextTypescript from "eslint-config-next/typescript";
import globals from "globals";

const config = [
  ...nextVitals,
  ...nextTypescript,
  {
    // Plain Node scripts: the build's post-processing and the browser tests.
    files: ["scripts/**/*.mjs", "e2e/**/*.mjs"],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    // The Swagger UI page's own script runs in the browser, outside Next.
    files: ["docs/**/*.js"],
    languageOptions: { globals: { ...globals.browser, SwaggerUIBundle: "readonly", SwaggerUIStandalonePreset: "readonly" } },
  },
  {
    ignores: [".next/**", "out/**", "node_modules/**", ".npm-cache/**", "next-env.d.ts"],
  },
];

export default config;
