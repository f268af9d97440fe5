// Form checks that mirror the services' own rules (plugins/service/src/validate.rs),
// so a person hears about a problem before the request is sent. The server
// checks again; its answer is shown when it disagrees.

/** Longest email, name, title or description, in characters. */
export const MAX_TEXT_CHARS = 255;
/** Passwords are 8 to 72 bytes of UTF-8: bcrypt reads no more than 72. */
export const PASSWORD_MIN_BYTES = 8;
export const PASSWORD_MAX_BYTES = 72;

/** Characters as the server counts them: Unicode scalar values. */
export function charCount(value: string): number {
  return Array.from(value).length;
}

export function byteLength(value: string): number {
  return new TextEncoder().encode(value).length;
}

const LOCAL_PART_SYMBOLS = "!#$%&'*+-/=?^_`{|}~";

function isLetterOrDigit(c: string): boolean {
  return /^[\p{L}\p{N}]$/u.test(c);
}

/** Why `address` is not an email address the server accepts, or null. */
export function emailProblem(address: string): string | null {
  if (address.length === 0) return "Enter your email address.";
  if (charCount(address) > MAX_TEXT_CHARS) return `An email address can have at most ${MAX_TEXT_CHARS} characters.`;
  if (/[\s\p{Cc}]/u.test(address)) return "An email address cannot contain spaces.";
  const parts = address.split("@");
  if (parts.length !== 2) return "An email address needs exactly one @, as in name@example.com.";
  const [local = "", domain = ""] = parts;
  if (local.length === 0) return "Put your name before the @, as in name@example.com.";
  if (domain.length === 0) return "Put a domain after the @, as in name@example.com.";
  if (charCount(local) > 64) return "The part before the @ can have at most 64 characters.";
  if (local.startsWith(".") || local.endsWith(".") || local.includes("..")) {
    return "The part before the @ has a dot in the wrong place.";
  }
  const localOk = Array.from(local).every(
    (c) => c === "." || isLetterOrDigit(c) || LOCAL_PART_SYMBOLS.includes(c) || c.codePointAt(0)! > 0x7f,
  );
  if (!localOk) return "The part before the @ contains a character an email address cannot have.";
  const labels = domain.split(".");
  if (labels.length < 2) return "The domain after the @ needs a dot, as in example.com.";
  for (const label of labels) {
    if (label.length === 0) return "The domain after the @ has a dot in the wrong place.";
    if (label.startsWith("-") || label.endsWith("-")) return "The domain after the @ has a hyphen in the wrong place.";
    if (charCount(label) > 63) return "A part of the domain after the @ is too long.";
    if (!Array.from(label).every((c) => c === "-" || isLetterOrDigit(c))) {
      return "The domain after the @ contains a character a domain cannot have.";
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? "")) return "The domain after the @ must end in a name, not a number.";
  return null;
}

/** Why `password` cannot be set, or null. */
export function passwordProblem(password: string): string | null {
  if (password.length === 0) return "Enter a password.";
  if (password.includes("\0")) return "A password cannot contain a NUL character.";
  const bytes = byteLength(password);
  if (bytes < PASSWORD_MIN_BYTES) return `Use at least ${PASSWORD_MIN_BYTES} characters.`;
  if (bytes > PASSWORD_MAX_BYTES) {
    return `Use at most ${PASSWORD_MAX_BYTES} bytes: that is 72 plain letters and digits, fewer with accents or emoji.`;
  }
  return null;
}

/** The repeated password, checked against the first. */
export function confirmationProblem(password: string, confirmation: string): string | null {
  if (confirmation.length === 0) return "Type the password again.";
  return password === confirmation ? null : "The two passwords are not the same.";
}

/** A name, title or description: `required` means at least one character. */
export function textProblem(value: string, label: string, required = false): string | null {
  if (required && value.length === 0) return `Enter a ${label.toLowerCase()}.`;
  if (charCount(value) > MAX_TEXT_CHARS) return `${label} can have at most ${MAX_TEXT_CHARS} characters.`;
  if (value.includes("\0")) return `${label} cannot contain a NUL character.`;
  return null;
}

/** The problems of a form, by field; empty when it may be sent. */
export type FieldProblems<K extends string> = Partial<Record<K, string>>;

export function collectProblems<K extends string>(checks: Record<K, string | null>): FieldProblems<K> {
  const problems: FieldProblems<K> = {};
  for (const key of Object.keys(checks) as K[]) {
    const problem = checks[key];
    if (problem) problems[key] = problem;
  }
  return problems;
}

export function hasProblems(problems: object): boolean {
  return Object.keys(problems).length > 0;
}
