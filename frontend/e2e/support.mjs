// What the browser tests share: where the platform is (from the Rust
// harness, proxy/tests/frontend.rs), the system Chromium, the API called
// directly for setting things up, axe-core checks and screenshots.

import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`cargo test -p proxy --test frontend\``);
  return value;
}

export const BASE = required("GATEHOUSE_BASE_URL").replace(/\/$/, "");
export const ADMIN = { email: required("GATEHOUSE_ADMIN_EMAIL"), password: required("GATEHOUSE_ADMIN_PASSWORD") };
export const EXPIRED_TOKEN = required("GATEHOUSE_EXPIRED_TOKEN");
const MAILDIR = required("GATEHOUSE_MAILDIR");
const ARTIFACTS = required("GATEHOUSE_ARTIFACTS");
const CHROMIUM = process.env.GATEHOUSE_CHROMIUM || "/usr/bin/chromium";

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  });
}

/** A fresh browser profile with one page, whose script errors and
 * refusals (a Content-Security-Policy violation, say) are collected. */
export async function openPage(browser) {
  const context = await browser.newContext({ viewport: DESKTOP, baseURL: BASE });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on("pageerror", (error) => problems.push(`script error: ${error.message}`));
  page.on("console", (message) => {
    // Answers with an error status are logged by the browser as errors;
    // they are expected (a wrong password is a 400). Anything else is not.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return {
    page,
    async close() {
      await context.close();
      assert.deepEqual(problems, [], "the page logged errors");
    },
  };
}

export function uniqueEmail(who) {
  return `${who}-${randomBytes(4).toString("hex")}@example.com`;
}

/** Calls the API directly (for setting up what a test needs). */
export async function callApi(method, path, { token, json, form } = {}) {
  const headers = {};
  let body;
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  const response = await fetch(`${BASE}${path}`, { method, headers, body });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: response.status, body: parsed };
}

export async function signUp(email, password, fullName = "Test Person") {
  const { status, body } = await callApi("POST", "/api/v1/users/signup", {
    json: { email, password, full_name: fullName },
  });
  assert.equal(status, 200, `sign-up of ${email}: ${JSON.stringify(body)}`);
  return body;
}

export async function apiToken(email, password) {
  const { status, body } = await callApi("POST", "/api/v1/login/access-token", { form: { username: email, password } });
  assert.equal(status, 200, `login of ${email}: ${JSON.stringify(body)}`);
  return body.access_token;
}

/** Logs in through the login page and waits for the dashboard. */
export async function logIn(page, email, password) {
  await page.goto("/");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL((url) => url.pathname === "/dashboard");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
}

export async function storedToken(page) {
  return page.evaluate(() => window.localStorage.getItem("access_token"));
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const audited = new Set();

/** Checks the page as it is with axe-core (no serious or critical
 * violation may be found) and keeps screenshots of it at desktop and
 * phone widths. At phone width the page must not scroll sideways. */
export async function audit(page, name, { sideways = false } = {}) {
  // Evaluated through the DevTools protocol, so the page's own
  // Content-Security-Policy stays as it is served.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((v) => v.impact === "serious" || v.impact === "critical")
      .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  assert.deepEqual(violations, [], `axe-core on ${name}`);

  const folder = join(ARTIFACTS, "screenshots");
  mkdirSync(folder, { recursive: true });
  const viewport = page.viewportSize();
  await page.setViewportSize(DESKTOP);
  await page.screenshot({ path: join(folder, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await sleep(100);
  await page.screenshot({ path: join(folder, `${name}-phone.png`), fullPage: true });
  if (!sideways) {
    const { scrollWidth, innerWidth } = await page.evaluate(() => ({
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
    }));
    assert.ok(scrollWidth <= innerWidth, `${name} scrolls sideways on a phone: ${scrollWidth} > ${innerWidth}`);
  }
  await page.setViewportSize(viewport ?? DESKTOP);
  audited.add(name);
}

export function auditedPages() {
  return [...audited].sort();
}

/** Quoted-printable soft breaks and `=XX` escapes undone, enough to read
 * a link out of a mail. */
function decodeQuotedPrintable(text) {
  const joined = text.replace(/=\r?\n/g, "");
  const bytes = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === "=" && /^[0-9A-F]{2}$/i.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** Waits for a mail to `recipient` to arrive at the SMTP server and
 * returns the reset link in it. */
export async function resetLinkMailedTo(recipient, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let names = [];
    try {
      names = readdirSync(MAILDIR);
    } catch {
      // Nothing received yet.
    }
    for (const name of names) {
      const raw = readFileSync(join(MAILDIR, name), "utf8");
      if (!new RegExp(`^To: .*${recipient.replace(/[.+]/g, "\\$&")}`, "mi").test(raw)) continue;
      const match = decodeQuotedPrintable(raw).match(/https?:\/\/[^\s"<>]+\/reset-password\?token=[A-Za-z0-9_-]+/);
      assert.ok(match, `the mail to ${recipient} has no reset link:\n${raw}`);
      return new URL(match[0]);
    }
    await sleep(200);
  }
  throw new Error(`no mail to ${recipient} within ${timeoutMs} ms`);
}
