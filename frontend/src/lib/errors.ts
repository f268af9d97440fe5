// The services answer errors as FastAPI did: `{"detail": "..."}`, or for
// bad input `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.
// These functions turn such an answer into a sentence a person understands.

/** What the API said, as far as the page needs it. */
export interface ApiFailure {
  /** The HTTP status, or 0 when no answer came back at all. */
  status: number;
  /** The parsed body, if any. */
  body?: unknown;
  /** The `Retry-After` header, in seconds, on a 429. */
  retryAfterSeconds?: number;
}

/** The services' own words, and what we show instead. */
const KNOWN_DETAILS: Record<string, string> = {
  "Incorrect email or password": "The email or password is not right. Check both and try again.",
  "Inactive user": "This account has been deactivated. Ask an administrator to turn it back on.",
  "Not authenticated": "Your session has ended. Please log in again.",
  "Could not validate credentials": "Your session has ended. Please log in again.",
  "User not found": "This account no longer exists.",
  "Invalid token": "This reset link is not valid any more: it may have expired or been used. Ask for a new one.",
  "Open user registration is forbidden on this server":
    "Sign-up is switched off on this server. Ask an administrator for an account.",
  "The user with this email already exists in the system": "An account with this email address already exists.",
  "The user with this email already exists in the system.": "An account with this email address already exists.",
  "User with this email already exists": "Another account already uses this email address.",
  "Incorrect password": "Your current password is not right.",
  "New password cannot be the same as the current one": "Choose a new password that differs from the current one.",
  "Super users are not allowed to delete themselves": "Administrators cannot delete their own account.",
  "The user doesn't have enough privileges": "You do not have permission to do that.",
  "Not enough permissions": "You do not have permission to do that.",
  "Item not found": "This item no longer exists. It may have been deleted.",
  "The user with this id does not exist in the system": "This user no longer exists. It may have been deleted.",
};

const FIELD_NAMES: Record<string, string> = {
  email: "Email",
  username: "Email",
  password: "Password",
  new_password: "New password",
  current_password: "Current password",
  full_name: "Full name",
  title: "Title",
  description: "Description",
};

/** One entry of a 422 list, in words. */
function describeValidationEntry(entry: unknown): string | null {
  if (typeof entry !== "object" || entry === null) return null;
  const { loc, msg, type } = entry as { loc?: unknown; msg?: unknown; type?: unknown };
  const field = Array.isArray(loc) ? String(loc[loc.length - 1] ?? "") : "";
  const name = FIELD_NAMES[field] ?? (field ? field.replace(/_/g, " ") : "The form");
  const message = typeof msg === "string" ? msg : "is not valid";
  if (field.includes("password") && type === "string_too_short") return `${name}: use at least 8 characters.`;
  if (field.includes("password") && type === "string_too_long") return `${name}: use at most 72 bytes.`;
  if (type === "missing") return `${name} is required.`;
  if (type === "string_too_long") return `${name} is too long (255 characters at most).`;
  if (type === "string_too_short") return `${name} cannot be empty.`;
  const reason = message.replace(/^value is not a valid email address: /, "");
  return `${name}: ${reason}`;
}

/** A sentence telling a person what went wrong. */
export function describeFailure(failure: ApiFailure): string {
  const { status, body } = failure;
  if (status === 0) return "The server could not be reached. Check your connection and try again.";
  if (status === 429) {
    const wait = failure.retryAfterSeconds;
    return wait && wait > 0
      ? `Too many attempts. Wait ${wait} second${wait === 1 ? "" : "s"} and try again.`
      : "Too many attempts. Wait a moment and try again.";
  }
  const detail = typeof body === "object" && body !== null ? (body as { detail?: unknown }).detail : undefined;
  if (typeof detail === "string") {
    const known = KNOWN_DETAILS[detail];
    if (known) return known;
    if (status >= 500) return "Something went wrong on the server. Please try again in a moment.";
    if (detail.length > 0) return detail.endsWith(".") ? detail : `${detail}.`;
  }
  if (Array.isArray(detail)) {
    const lines = detail.map(describeValidationEntry).filter((line): line is string => line !== null);
    if (lines.length > 0) return lines.join(" ");
  }
  if (status === 401) return KNOWN_DETAILS["Not authenticated"]!;
  if (status === 403) return "You do not have permission to do that.";
  if (status === 404) return "That was not found. It may have been deleted.";
  if (status === 413) return "That is too much text to send at once.";
  if (status >= 500) return "Something went wrong on the server. Please try again in a moment.";
  return `The request failed (status ${status}). Please try again.`;
}

/** Whether an answer to `GET /users/me` means the session cannot go on:
 * the token was refused, or the account behind it is gone or switched off.
 * (Elsewhere a 404 "User not found" may be about another user.) */
export function endsSession(failure: ApiFailure): boolean {
  if (failure.status === 401) return true;
  const detail = (failure.body as { detail?: unknown } | undefined)?.detail;
  return (failure.status === 404 && detail === "User not found") || (failure.status === 400 && detail === "Inactive user");
}
