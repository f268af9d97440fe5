import { type ButtonHTMLAttributes, type InputHTMLAttributes, type ReactNode, useId } from "react";

// Colours are Tailwind's with at least 4.5:1 contrast against their
// background; every control shows a visible focus ring.

const FOCUS = "focus-visible:outline-2 focus-visible:outline-offset-2 focus-visible:outline-indigo-700";

const BUTTON_KINDS = {
  primary: "bg-indigo-700 text-white hover:bg-indigo-800 disabled:bg-indigo-400",
  secondary: "border border-slate-400 bg-white text-slate-900 hover:bg-slate-100 disabled:text-slate-500",
  danger: "bg-red-700 text-white hover:bg-red-800 disabled:bg-red-400",
} as const;

interface ButtonProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  kind?: keyof typeof BUTTON_KINDS;
  /** While true the button is disabled and says `busyLabel`. */
  busy?: boolean;
  busyLabel?: string;
}

export function Button({ kind = "primary", busy = false, busyLabel, className = "", children, ...rest }: ButtonProps) {
  return (
    <button
      type="button"
      {...rest}
      disabled={busy || rest.disabled}
      aria-busy={busy || undefined}
      className={`inline-flex min-h-10 items-center justify-center gap-2 rounded-md px-4 py-2 text-sm font-semibold ${FOCUS} disabled:cursor-not-allowed ${BUTTON_KINDS[kind]} ${className}`}
    >
      {busy && <Spinner />}
      {busy && busyLabel ? busyLabel : children}
    </button>
  );
}

export function Spinner() {
  return (
    <span
      aria-hidden="true"
      className="inline-block size-4 animate-spin rounded-full border-2 border-current border-r-transparent motion-reduce:animate-none"
    />
  );
}

interface TextFieldProps extends Omit<InputHTMLAttributes<HTMLInputElement>, "onChange"> {
  label: string;
  value: string;
  onChange: (value: string) => void;
  error?: string;
  hint?: string;
}

/** A labelled input whose problem, if any, is read out with it. */
export function TextField({ label, value, onChange, error, hint, id, className = "", ...rest }: TextFieldProps) {
  const generated = useId();
  const inputId = id ?? generated;
  const hintId = `${inputId}-hint`;
  const errorId = `${inputId}-error`;
  const describedBy = [hint ? hintId : null, error ? errorId : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`flex flex-col gap-1 ${className}`}>
      <label htmlFor={inputId} className="text-sm font-medium text-slate-900">
        {label}
        {rest.required ? "" : <span className="font-normal text-slate-600"> (optional)</span>}
      </label>
      <input
        id={inputId}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error ? true : undefined}
        aria-describedby={describedBy}
        className={`min-h-10 rounded-md border bg-white px-3 py-2 text-base text-slate-900 ${FOCUS} ${
          error ? "border-red-700" : "border-slate-500"
        }`}
        {...rest}
      />
      {hint && (
        <p id={hintId} className="text-sm text-slate-600">
          {hint}
        </p>
      )}
      {error && (
        <p id={errorId} className="text-sm font-medium text-red-700">
          {error}
        </p>
      )}
    </div>
  );
}

export function CheckboxField({
  label,
  checked,
  onChange,
  hint,
}: {
  label: string;
  checked: boolean;
  onChange: (checked: boolean) => void;
  hint?: string;
}) {
  const id = useId();
  return (
    <div className="flex items-start gap-3">
      <input
        id={id}
        type="checkbox"
        checked={checked}
        onChange={(e) => onChange(e.target.checked)}
        aria-describedby={hint ? `${id}-hint` : undefined}
        className={`mt-1 size-4 accent-indigo-700 ${FOCUS}`}
      />
      <div>
        <label htmlFor={id} className="text-sm font-medium text-slate-900">
          {label}
        </label>
        {hint && (
          <p id={`${id}-hint`} className="text-sm text-slate-600">
            {hint}
          </p>
        )}
      </div>
    </div>
  );
}

const ALERT_TONES = {
  error: "border-red-700 bg-red-50 text-red-900",
  warning: "border-amber-700 bg-amber-50 text-amber-950",
  success: "border-green-700 bg-green-50 text-green-900",
  info: "border-sky-700 bg-sky-50 text-sky-950",
} as const;

export type AlertTone = keyof typeof ALERT_TONES;

/** A message in a coloured box: errors are announced at once, the rest politely. */
export function Alert({ tone, children, className = "" }: { tone: AlertTone; children: ReactNode; className?: string }) {
  return (
    <div
      role={tone === "error" ? "alert" : "status"}
      className={`rounded-md border-l-4 px-4 py-3 text-sm ${ALERT_TONES[tone]} ${className}`}
    >
      {children}
    </div>
  );
}

/** A titled part of a page, named by its heading. */
export function Section({ title, children }: { title: string; children: ReactNode }) {
  const id = `section-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return (
    <section aria-labelledby={id} className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
      <h2 id={id} className="mb-4 text-lg font-semibold text-slate-900">
        {title}
      </h2>
      {children}
    </section>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p role="status" className="flex items-center gap-2 py-6 text-slate-700">
      <Spinner />
      {what}
    </p>
  );
}

export const linkClass = `font-medium text-indigo-700 underline underline-offset-2 hover:text-indigo-900 ${FOCUS} rounded-sm`;
export const focusClass = FOCUS;
