// After `next build` has exported the pages to out/:
//  1. Swagger UI at /docs: the swagger-ui-dist assets and our page;
//  2. a check that no secret or token reached the built files;
//  3. precompressed siblings (.br, .gz) of every compressible file, which
//     the proxy serves to clients that accept them.

import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "out");

/** What compresses well; images other than SVG and fonts already are. */
export const COMPRESSIBLE = new Set([".html", ".js", ".css", ".json", ".svg", ".txt", ".map", ".xml"]);
/** Below this a compressed copy saves too little to be worth a file. */
const MIN_BYTES = 256;

function copySwaggerUi() {
  const require = createRequire(import.meta.url);
  const dist = dirname(require.resolve("swagger-ui-dist/package.json"));
  const docs = join(out, "docs");
  mkdirSync(docs, { recursive: true });
  for (const file of ["swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "LICENSE", "NOTICE"]) {
    copyFileSync(join(dist, file), join(docs, file === "LICENSE" || file === "NOTICE" ? `${file}.txt` : file));
  }
  for (const file of ["index.html", "docs.js", "docs.css"]) {
    copyFileSync(join(root, "docs", file), join(docs, file));
  }
}

function* filesUnder(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* filesUnder(path);
    else if (entry.isFile()) yield path;
  }
}

/** Things that must never be shipped: keys, bearer tokens (JWTs), the
 * development passwords. */
const FORBIDDEN = [
  { what: "a private key", pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/ },
  { what: "a JWT", pattern: /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}/ },
  { what: "a development password", pattern: /changethis|admin-password/ },
];

function checkNoSecrets(files) {
  const problems = [];
  for (const file of files) {
    const text = readFileSync(file, "latin1");
    for (const { what, pattern } of FORBIDDEN) {
      if (pattern.test(text)) problems.push(`${relative(root, file)} contains ${what}`);
    }
  }
  if (problems.length > 0) throw new Error(`refusing to ship:\n  ${problems.join("\n  ")}`);
}

function precompress(files) {
  let written = 0;
  for (const file of files) {
    if (!COMPRESSIBLE.has(extname(file)) || statSync(file).size < MIN_BYTES) continue;
    const plain = readFileSync(file);
    const br = brotliCompressSync(plain, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
        [constants.BROTLI_PARAM_SIZE_HINT]: plain.length,
        [constants.BROTLI_PARAM_MODE]: extname(file) === ".html" || extname(file) === ".txt" ? constants.BROTLI_MODE_TEXT : constants.BROTLI_MODE_GENERIC,
      },
    });
    const gz = gzipSync(plain, { level: 9 });
    // A copy no smaller than the file is of no use to anyone.
    if (br.length < plain.length) {
      writeFileSync(`${file}.br`, br);
      written++;
    }
    if (gz.length < plain.length) {
      writeFileSync(`${file}.gz`, gz);
      written++;
    }
  }
  return written;
}

function main() {
  statSync(out); // `next build` must have exported first.
  copySwaggerUi();
  const files = [...filesUnder(out)].filter((f) => !f.endsWith(".br") && !f.endsWith(".gz"));
  checkNoSecrets(files);
  const written = precompress(files);
  const digest = createHash("sha256");
  for (const file of files.sort()) digest.update(relative(out, file)).update(readFileSync(file));
  console.log(`postbuild: ${files.length} files in out/, ${written} precompressed copies, content ${digest.digest("hex").slice(0, 12)}`);
}

main();
