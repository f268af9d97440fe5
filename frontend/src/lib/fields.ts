// The fields forms are made of, as data: what a field is called, how the
// browser should fill it, and the check it must pass before anything is
// sent. A form is an ordered record of them (see `useForm`).

import { collectProblems, confirmationProblem, emailProblem, type FieldProblems, passwordProblem, textProblem } from "./validation";

/** A form's values, by field name. */
export type Values = Readonly<Record<string, string>>;

export interface FieldSpec {
  label: string;
  type?: "email" | "password";
  autoComplete?: string;
  /** Says "(optional)" after the label when not set. */
  required?: boolean;
  hint?: string;
  /** Why `value` cannot be sent, or null; `values` are the whole form's. */
  check: (value: string, values: Values) => string | null;
}

export const EMAIL: FieldSpec = {
  label: "Email",
  type: "email",
  autoComplete: "email",
  required: true,
  check: (value) => emailProblem(value.trim()),
};

/** A name, title or description: at most 255 characters; when `required`,
 * more than white space. */
export function text(label: string, required = false): FieldSpec {
  return { label, required, check: (value) => textProblem(required ? value.trim() : value, label, required) };
}

export const FULL_NAME: FieldSpec = { ...text("Full name"), autoComplete: "name" };

/** The password someone has now: only its presence is checked. */
export function currentPassword(label: string, missing: string): FieldSpec {
  return {
    label,
    type: "password",
    autoComplete: "current-password",
    required: true,
    check: (value) => (value.length === 0 ? missing : null),
  };
}

/** How a new password is asked for. */
export interface PasswordRule {
  required: boolean;
  hint: string;
  /** Whether the two fields are to be checked (and the password set). */
  asked: (values: Values) => boolean;
}

/** Always. */
export const SET_PASSWORD: PasswordRule = { required: true, hint: "8 to 72 characters.", asked: () => true };

/** Only once either field has been typed in (someone else's, when editing them). */
export const KEEP_PASSWORD: PasswordRule = {
  required: false,
  hint: "Leave empty to keep the current password.",
  asked: (values) => values.password !== "" || values.confirmation !== "",
};

/** A new password (`password`) and the same again (`confirmation`):
 * "Password" and "Confirm password", say. */
export function newPassword(
  label: string,
  { required, hint, asked }: PasswordRule = SET_PASSWORD,
): { password: FieldSpec; confirmation: FieldSpec } {
  const common = { type: "password", autoComplete: "new-password", required } as const;
  return {
    password: {
      ...common,
      label,
      hint,
      check: (value, values) => (asked(values) ? passwordProblem(value) : null),
    },
    confirmation: {
      ...common,
      label: `Confirm ${label.toLowerCase()}`,
      check: (value, values) => (asked(values) ? confirmationProblem(values.password ?? "", value) : null),
    },
  };
}

/** Every field's problem, by name; empty when the form may be sent. */
export function checkFields<K extends string>(fields: Record<K, FieldSpec>, values: Record<K, string>): FieldProblems<K> {
  const names = Object.keys(fields) as K[];
  return collectProblems(
    Object.fromEntries(names.map((name) => [name, fields[name].check(values[name], values)])) as Record<K, string | null>,
  );
}

/** An optional text as the API takes it: trimmed, or null when empty. */
export function optionalText(value: string): string | null {
  const trimmed = value.trim();
  return trimmed === "" ? null : trimmed;
}
