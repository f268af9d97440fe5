// The web frontend in Debian's Chromium, headless, against the real
// platform: the proxy binary serving the exported pages and routing the
// API to the host, the auth, users and items components, PostgreSQL, the
// mailer and an SMTP server. Started by proxy/tests/frontend.rs.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ADMIN,
  apiToken,
  audit,
  auditedPages,
  callApi,
  EXPIRED_TOKEN,
  launchBrowser,
  logIn,
  openPage,
  resetLinkMailedTo,
  signUp,
  storedToken,
  uniqueEmail,
} from "./support.mjs";

const EVERY_PAGE = [
  "404",
  "admin",
  "dashboard",
  "docs",
  "items",
  "items-empty",
  "login",
  "recover-password",
  "reset-password",
  "signup",
];

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** Runs `body` with a fresh page, checked for script errors at the end. */
async function withPage(body) {
  const opened = await openPage(browser);
  try {
    await body(opened.page);
  } finally {
    await opened.close();
  }
}

// Next.js announces route changes in a `role="alert"` of its own, outside `main`.
const alertText = (page) => page.getByRole("main").getByRole("alert").first().innerText();
const statusWith = (page, text) => page.getByRole("status").filter({ hasText: text }).first();

test("the login page: keyboard order, visible focus, and a link to sign up", async () => {
  await withPage(async (page) => {
    const response = await page.goto("/");
    assert.equal(response.status(), 200);
    assert.match(response.headers()["cache-control"] ?? "", /no-cache/, "pages are revalidated");
    await page.getByRole("link", { name: "Sign up" }).waitFor();
    await audit(page, "login");

    // Tab goes: skip link, site name, then the form in reading order.
    const focused = async () =>
      page.evaluate(() => {
        const el = document.activeElement;
        const label = el?.id ? document.querySelector(`label[for="${el.id}"]`)?.textContent : null;
        return label ?? el?.textContent?.trim();
      });
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "Skip to content");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "Gatehouse");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "Email");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, "none", "the focused field shows where focus is");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "Password");
    await page.keyboard.press("Tab");
    assert.equal(await focused(), "Log in");

    // Nothing typed: the form says what is missing, without a request.
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByText("Enter your email address.").waitFor();
    await page.getByText("Enter your password.").waitFor();
    assert.equal(await page.getByLabel("Email", { exact: true }).getAttribute("aria-invalid"), "true");
  });
});

test("a wrong password is refused in plain words", async () => {
  const email = uniqueEmail("wrong");
  await signUp(email, "right-password");
  await withPage(async (page) => {
    await page.goto("/");
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill("wrong-password");
    await page.getByRole("button", { name: "Log in" }).click();
    assert.match(await alertText(page), /The email or password is not right/);
    assert.equal(new URL(page.url()).pathname, "/");
    assert.equal(await storedToken(page), null);
  });
});

test("sign up, then log out and in again, landing where one was going", async () => {
  const email = uniqueEmail("newcomer");
  await withPage(async (page) => {
    await page.goto("/");
    await page.getByRole("link", { name: "Sign up" }).click();
    await page.waitForURL("**/signup");
    await page.getByRole("heading", { name: "Sign up" }).waitFor();
    await audit(page, "signup");

    // The API's rules, checked before sending.
    await page.getByLabel("Email", { exact: true }).fill("not-an-email");
    await page.getByLabel("Password", { exact: true }).fill("short");
    await page.getByLabel("Confirm password").fill("different");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByText("An email address needs exactly one @").waitFor();
    await page.getByText("Use at least 8 characters.").waitFor();
    await page.getByText("The two passwords are not the same.").waitFor();

    await page.getByLabel("Full name").fill("Nora Newcomer");
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill("newcomer-password");
    await page.getByLabel("Confirm password").fill("newcomer-password");
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.waitForURL("**/dashboard");
    await page.getByText("Hello, Nora Newcomer.").waitFor();
    assert.ok(await storedToken(page), "the token is kept in local storage");

    // The same email again is refused in words.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL((url) => url.pathname === "/");
    await statusWith(page, "You have logged out.").waitFor();
    assert.equal(await storedToken(page), null, "logging out forgets the token");
    await page.goto("/signup");
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill("another-password");
    await page.getByLabel("Confirm password").fill("another-password");
    await page.getByRole("button", { name: "Sign up" }).click();
    assert.match(await alertText(page), /An account with this email address already exists/);

    // A page that needs a session sends one to log in, and back after.
    await page.goto("/items?page=1");
    await page.waitForURL((url) => url.pathname === "/" && url.searchParams.get("notice") === "login-required");
    await statusWith(page, "Please log in to see that page.").waitFor();
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill("newcomer-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.waitForURL((url) => url.pathname === "/items");
    await page.getByRole("heading", { name: "Your items", level: 1 }).waitFor();
  });
});

test("items: create, edit, delete, and page through thirty, with deep links that survive a reload", async () => {
  const email = uniqueEmail("collector");
  await signUp(email, "collector-password");
  await withPage(async (page) => {
    await logIn(page, email, "collector-password");
    await page.getByRole("link", { name: "Items" }).click();
    await page.waitForURL("**/items");
    await page.getByText("You have no items yet.").waitFor();
    await audit(page, "items-empty");

    // Create: a title is required, then the item is listed.
    await page.getByRole("button", { name: "Add item" }).click();
    await page.getByText("Enter a title.").waitFor();
    await page.getByLabel("Title").fill("First thing");
    await page.getByLabel("Description").fill("It came first");
    await page.getByRole("button", { name: "Add item" }).click();
    await statusWith(page, "“First thing” has been added.").waitFor();
    const list = page.getByRole("list", { name: "Items" });
    await list.getByText("First thing").waitFor();
    await list.getByText("It came first").waitFor();

    // Edit, in a dialog.
    await page.getByRole("button", { name: "Edit “First thing”" }).click();
    const dialog = page.getByRole("dialog", { name: "Edit item" });
    await dialog.getByLabel("Title").fill("First thing, renamed");
    await dialog.getByRole("button", { name: "Save item" }).click();
    await statusWith(page, "“First thing, renamed” has been saved.").waitFor();
    await list.getByText("First thing, renamed").waitFor();
    assert.equal(await dialog.isVisible(), false);

    // Delete, after confirming.
    await page.getByRole("button", { name: "Delete “First thing, renamed”" }).click();
    await page.getByRole("dialog", { name: "Delete item?" }).getByRole("button", { name: "Delete item" }).click();
    await statusWith(page, "has been deleted.").waitFor();
    await page.getByText("You have no items yet.").waitFor();

    // Thirty items, made through the API with the page's own token.
    const token = await storedToken(page);
    for (let n = 1; n <= 30; n++) {
      const { status } = await callApi("POST", "/api/v1/items/", {
        token,
        json: { title: `Item ${String(n).padStart(2, "0")}`, description: `number ${n}` },
      });
      assert.equal(status, 200);
    }
    await page.reload();
    const pageInfo = page.getByText(/^Showing /);
    await page.getByText("Showing 1–10 of 30 · page 1 of 3").waitFor();
    const titles = async () => list.locator("li p.font-medium").allInnerTexts();
    assert.deepEqual(await titles(), ["Item 30", "Item 29", "Item 28", "Item 27", "Item 26", "Item 25", "Item 24", "Item 23", "Item 22", "Item 21"]);
    assert.equal(await page.getByRole("button", { name: "Previous page" }).isDisabled(), true);
    await audit(page, "items");
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByText("Showing 11–20 of 30 · page 2 of 3").waitFor();
    await page.getByRole("button", { name: "Next page" }).click();
    await page.getByText("Showing 21–30 of 30 · page 3 of 3").waitFor();
    assert.equal(new URL(page.url()).search, "?page=3");
    assert.equal(await page.getByRole("button", { name: "Next page" }).isDisabled(), true);
    const lastPage = await titles();
    assert.equal(lastPage.at(-1), "Item 01");

    // A reload, and a deep link opened afresh, show the same page.
    const reloaded = await page.reload();
    assert.equal(reloaded.status(), 200);
    await page.getByText("Showing 21–30 of 30 · page 3 of 3").waitFor();
    assert.deepEqual(await titles(), lastPage);
    const deep = await page.goto("/items?page=2");
    assert.equal(deep.status(), 200);
    await page.getByText("Showing 11–20 of 30 · page 2 of 3").waitFor();
    await page.goBack();
    await pageInfo.filter({ hasText: "page 3 of 3" }).waitFor();
  });
});

test("profile: edit name and email, change the password, log in with the new one", async () => {
  const email = uniqueEmail("profile");
  const newEmail = uniqueEmail("profile-moved");
  await signUp(email, "profile-password", "Pat Profile");
  await withPage(async (page) => {
    await logIn(page, email, "profile-password");
    await audit(page, "dashboard");

    const profile = page.getByRole("region", { name: "Profile" });
    await profile.getByLabel("Full name").fill("Patricia Profile");
    await profile.getByLabel("Email").fill("no-at-sign");
    await profile.getByRole("button", { name: "Save profile" }).click();
    await profile.getByText("An email address needs exactly one @").waitFor();
    await profile.getByLabel("Email").fill(newEmail);
    await profile.getByRole("button", { name: "Save profile" }).click();
    await statusWith(profile, "Your profile has been saved.").waitFor();
    await page.reload();
    assert.equal(await profile.getByLabel("Full name").inputValue(), "Patricia Profile");
    assert.equal(await profile.getByLabel("Email").inputValue(), newEmail);

    const password = page.getByRole("region", { name: "Password" });
    await password.getByLabel("Current password").fill("not-the-password");
    await password.getByLabel("New password", { exact: true }).fill("profile-password-2");
    await password.getByLabel("Confirm new password").fill("profile-password-2");
    await password.getByRole("button", { name: "Change password" }).click();
    assert.match(await password.getByRole("alert").innerText(), /Your current password is not right/);
    await password.getByLabel("Current password").fill("profile-password");
    await password.getByRole("button", { name: "Change password" }).click();
    await statusWith(password, "Your password has been changed.").waitFor();

    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL((url) => url.pathname === "/");
    await page.getByLabel("Email", { exact: true }).fill(newEmail);
    await page.getByLabel("Password", { exact: true }).fill("profile-password");
    await page.getByRole("button", { name: "Log in" }).click();
    assert.match(await alertText(page), /The email or password is not right/);
    await logIn(page, newEmail, "profile-password-2");
  });
});

test("a forgotten password is reset through the link in the mail", async () => {
  const email = uniqueEmail("forgetful");
  await signUp(email, "forgotten-password");
  await withPage(async (page) => {
    await page.goto("/");
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.waitForURL("**/recover-password");
    await audit(page, "recover-password");
    await page.getByLabel("Email").fill(email);
    await page.getByRole("button", { name: "Send the link" }).click();
    await statusWith(page, "a link to choose a new password is on its way").waitFor();

    const link = await resetLinkMailedTo(email);
    assert.equal(link.pathname, "/reset-password");
    // The link names the configured site; the page is the same here.
    await page.goto(`${link.pathname}${link.search}`);
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
    await audit(page, "reset-password");
    await page.getByLabel("New password", { exact: true }).fill("remembered-password");
    await page.getByLabel("Confirm new password").fill("remembered-password");
    await page.getByRole("button", { name: "Set the new password" }).click();
    await page.waitForURL((url) => url.pathname === "/" && url.searchParams.get("notice") === "password-reset");
    await statusWith(page, "Your password has been changed.").waitFor();
    await logIn(page, email, "remembered-password");

    // The link works once.
    await page.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL((url) => url.pathname === "/");
    await page.goto(`${link.pathname}${link.search}`);
    await page.getByLabel("New password", { exact: true }).fill("third-password");
    await page.getByLabel("Confirm new password").fill("third-password");
    await page.getByRole("button", { name: "Set the new password" }).click();
    assert.match(await alertText(page), /reset link is not valid any more/);
  });
});

test("an administrator creates, edits (administrator, deactivated) and deletes a user", async () => {
  const email = uniqueEmail("managed");
  await withPage(async (page) => {
    await logIn(page, ADMIN.email, ADMIN.password);
    await page.getByRole("link", { name: "Admin" }).click();
    await page.waitForURL("**/admin");
    await page.getByRole("list", { name: "Users" }).waitFor();
    await audit(page, "admin");

    await page.getByRole("button", { name: "Add user" }).click();
    const adding = page.getByRole("dialog", { name: "Add a user" });
    await adding.getByLabel("Email").fill(email);
    await adding.getByLabel("Full name").fill("Morgan Managed");
    await adding.getByLabel("Password", { exact: true }).fill("managed-password");
    await adding.getByLabel("Confirm password").fill("managed-password");
    await adding.getByRole("button", { name: "Add user" }).click();
    await statusWith(page, `${email} has been added.`).waitFor();
    const row = page.getByRole("list", { name: "Users" }).getByRole("listitem").filter({ hasText: email });
    await row.getByText("Morgan Managed").waitFor();
    await row.getByText("User", { exact: true }).waitFor();
    await row.getByText("Active", { exact: true }).waitFor();
    assert.equal((await callApi("POST", "/api/v1/login/access-token", { form: { username: email, password: "managed-password" } })).status, 200);

    await page.getByRole("button", { name: `Edit ${email}` }).click();
    const editing = page.getByRole("dialog", { name: "Edit user" });
    await editing.getByLabel("Full name").fill("Morgan Promoted");
    await editing.getByLabel("Administrator").check();
    await editing.getByLabel("Active").uncheck();
    await editing.getByRole("button", { name: "Save user" }).click();
    await statusWith(page, `${email} has been saved.`).waitFor();
    await row.getByText("Morgan Promoted").waitFor();
    await row.getByText("Administrator", { exact: true }).waitFor();
    await row.getByText("Inactive", { exact: true }).waitFor();
    const refused = await callApi("POST", "/api/v1/login/access-token", { form: { username: email, password: "managed-password" } });
    assert.deepEqual([refused.status, refused.body.detail], [400, "Inactive user"], "a deactivated user cannot log in");

    await page.getByRole("button", { name: `Delete ${email}` }).click();
    await page.getByRole("dialog", { name: "Delete user?" }).getByRole("button", { name: "Delete user" }).click();
    await statusWith(page, `${email} has been deleted.`).waitFor();
    assert.equal(await row.count(), 0);
    assert.equal(await page.getByRole("button", { name: `Delete ${ADMIN.email}` }).count(), 0, "no one deletes themself");
  });
});

test("a normal user is kept out of /admin", async () => {
  const email = uniqueEmail("ordinary");
  await signUp(email, "ordinary-password");
  await withPage(async (page) => {
    await logIn(page, email, "ordinary-password");
    assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0, "no link to it");
    await page.goto("/admin");
    await page.waitForURL((url) => url.pathname === "/dashboard" && url.searchParams.get("notice") === "admin-only");
    await statusWith(page, "The administration page is for administrators only.").waitFor();
    assert.equal(await page.getByRole("list", { name: "Users" }).count(), 0);
  });
});

test("an expired token, and an account deactivated meanwhile, return to the login page", async () => {
  await withPage(async (page) => {
    // A token signed with the platform's key whose time is up.
    await page.goto("/");
    await page.evaluate((token) => window.localStorage.setItem("access_token", token), EXPIRED_TOKEN);
    await page.goto("/items");
    await page.waitForURL((url) => url.pathname === "/" && url.searchParams.get("notice") === "session-ended");
    await statusWith(page, "Your session has ended. Please log in again.").waitFor();
    assert.equal(await storedToken(page), null, "the refused token is forgotten");
  });

  const email = uniqueEmail("revoked");
  const user = await signUp(email, "revoked-password");
  await withPage(async (page) => {
    await logIn(page, email, "revoked-password");
    await page.goto("/items");
    await page.getByText("You have no items yet.").waitFor();
    // Mid-session, the token stops being accepted: the next call says 401.
    const valid = await storedToken(page);
    await page.evaluate((token) => window.localStorage.setItem("access_token", token), EXPIRED_TOKEN);
    await page.getByLabel("Title").fill("never saved");
    await page.getByRole("button", { name: "Add item" }).click();
    await page.waitForURL((url) => url.pathname === "/" && url.searchParams.get("notice") === "session-ended");
    await statusWith(page, "Your session has ended.").waitFor();

    // The account is switched off by an administrator while its token is still valid.
    await page.evaluate((token) => window.localStorage.setItem("access_token", token), valid);
    await page.goto("/dashboard");
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    const admin = await apiToken(ADMIN.email, ADMIN.password);
    const { status } = await callApi("PATCH", `/api/v1/users/${user.id}`, { token: admin, json: { is_active: false } });
    assert.equal(status, 200);
    await page.reload();
    await page.waitForURL((url) => url.pathname === "/" && url.searchParams.get("notice") === "account-unavailable");
    await statusWith(page, "Your account is no longer available").waitFor();
    assert.equal(await storedToken(page), null);
  });
});

test("unknown paths get the app's 404 page", async () => {
  await withPage(async (page) => {
    const response = await page.goto("/no/such/page");
    assert.equal(response.status(), 404);
    await page.getByRole("heading", { name: "Page not found" }).waitFor();
    await audit(page, "404");
  });
});

test("/docs shows each service's routes, and Authorize works with a token from the login route", async () => {
  const email = uniqueEmail("reader");
  await signUp(email, "reader-password");
  await withPage(async (page) => {
    const response = await page.goto("/docs");
    assert.equal(response.status(), 200);
    const path = (p) => page.locator(`.opblock-summary-path[data-path="${p}"]`).first();
    await path("/api/v1/login/access-token").waitFor();
    for (const route of ["/api/v1/password-recovery/{email}", "/api/v1/reset-password/", "/api/v1/login/test-token"]) {
      await path(route).waitFor();
    }
    await audit(page, "docs", { sideways: true });

    const choose = async (service) => {
      await page.getByLabel("Select a definition").selectOption({ label: service });
    };
    await choose("users service");
    for (const route of ["/api/v1/users/", "/api/v1/users/signup", "/api/v1/users/me", "/api/v1/users/{user_id}"]) {
      await path(route).waitFor();
    }
    await choose("items service");
    for (const route of ["/api/v1/items/", "/api/v1/items/{id}"]) await path(route).waitFor();

    // Logging in on the page authorizes "Try it out".
    await page.getByLabel("Email").fill(email);
    await page.getByLabel("Password").fill("reader-password");
    await page.getByRole("button", { name: "Log in and authorize" }).click();
    await page.getByText(`Authorized as ${email}`).waitFor();
    const listItems = page.locator("#operations-default-read_items");
    await listItems.locator(".opblock-summary").first().click();
    await listItems.getByRole("button", { name: "Try it out" }).click();
    await listItems.getByRole("button", { name: "Execute" }).click();
    const status = listItems.locator(".live-responses-table .response .response-col_status").first();
    await status.waitFor();
    assert.equal((await status.innerText()).trim(), "200", "the items service answered the authorized request");
    assert.match(await listItems.locator(".request-url").innerText(), /\/items\/api\/v1\/items\//);
  });
});

test("every page was checked and photographed", () => {
  assert.deepEqual(auditedPages(), EVERY_PAGE);
});
