// The access token lives in local storage, as the original design had it,
// and goes with every API call as `Authorization: Bearer`.

const TOKEN_KEY = "access_token";

export function readToken(): string | null {
  if (typeof window === "undefined") return null;
  try {
    return window.localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string): void {
  window.localStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  try {
    window.localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage switched off: nothing was kept either.
  }
}

/** Why the login page is shown: a code in its `notice` query parameter,
 * so that no text of a URL's choosing is ever put on the page. */
export const NOTICES = {
  "session-ended": { tone: "warning", text: "Your session has ended. Please log in again." },
  "login-required": { tone: "info", text: "Please log in to see that page." },
  "logged-out": { tone: "info", text: "You have logged out." },
  "account-deleted": { tone: "info", text: "Your account and its items have been deleted." },
  "account-unavailable": {
    tone: "warning",
    text: "Your account is no longer available: it was deactivated or deleted.",
  },
  "password-reset": { tone: "success", text: "Your password has been changed. Log in with the new one." },
  "admin-only": { tone: "warning", text: "The administration page is for administrators only." },
} as const;

export type NoticeCode = keyof typeof NOTICES;

export function noticeFor(code: unknown): (typeof NOTICES)[NoticeCode] | null {
  return typeof code === "string" && Object.hasOwn(NOTICES, code) ? NOTICES[code as NoticeCode] : null;
}

/** A page to return to after logging in: only a path on this site. */
export function safeReturnPath(path: unknown): string | null {
  if (typeof path !== "string" || !path.startsWith("/") || path.startsWith("//") || path.includes("\\")) return null;
  return path;
}
