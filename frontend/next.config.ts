import type { NextConfig } from "next";

// A static export: `npm run build` writes plain files to `out/`, which the
// edge proxy serves at `/` from the same origin as the API.
const nextConfig: NextConfig = {
  output: "export",
  reactStrictMode: true,
  // `/items` is exported as `items.html`; the proxy tries `P.html` for a path P.
  trailingSlash: false,
  poweredByHeader: false,
  images: { unoptimized: true },
  // Source maps stay out of what is served.
  productionBrowserSourceMaps: false,
};

export default nextConfig;
