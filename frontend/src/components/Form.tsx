import type { FormEvent, ReactNode } from "react";

import { type FieldProps, type Outcome, useAction } from "@/lib/form";
import { Alert, Button, TextField } from "./ui";

/** A form checked before it is sent (see `useForm`, so the browser's own
 * checks are off): what came of the last try, followed by `help` if any,
 * then the fields, then `children` (other controls, the buttons). */
export function Form({
  form,
  onSubmit,
  help,
  children,
}: {
  form: { outcome: Outcome | null; fields: FieldProps[] };
  onSubmit: (event: FormEvent) => void;
  help?: ReactNode;
  children: ReactNode;
}) {
  return (
    <form onSubmit={onSubmit} noValidate className="flex flex-col gap-4">
      <OutcomeAlert outcome={form.outcome}>{help}</OutcomeAlert>
      {form.fields.map(({ name, ...field }) => (
        <TextField key={name} {...field} />
      ))}
      {children}
    </form>
  );
}

/** What came of the last action, if anything; `children` follow its text. */
export function OutcomeAlert({ outcome, children }: { outcome: Outcome | null; children?: ReactNode }) {
  if (!outcome) return null;
  return (
    <Alert tone={outcome.tone}>
      {outcome.text}
      {children}
    </Alert>
  );
}

/** Sends its form; disabled, saying `busyLabel`, while that is under way. */
export function SubmitButton({ busy, busyLabel, children }: { busy: boolean; busyLabel: string; children: ReactNode }) {
  return (
    <Button type="submit" busy={busy} busyLabel={busyLabel}>
      {children}
    </Button>
  );
}

/** The buttons closing a form or a dialog, right-aligned, Cancel first when
 * there is something to cancel. */
export function Actions({ onCancel, children }: { onCancel?: () => void; children: ReactNode }) {
  return (
    <div className="flex flex-wrap justify-end gap-2">
      {onCancel && (
        <Button kind="secondary" onClick={onCancel}>
          Cancel
        </Button>
      )}
      {children}
    </div>
  );
}

/** A deletion to confirm: what will go (`children`), Cancel, and the
 * button (`label`) that runs `onDelete`. */
export function ConfirmDelete({
  label,
  onDelete,
  onCancel,
  children,
}: {
  label: string;
  onDelete: () => Promise<void>;
  onCancel: () => void;
  children: ReactNode;
}) {
  const { busy, outcome, run } = useAction();
  return (
    <>
      <p>{children}</p>
      <OutcomeAlert outcome={outcome} />
      <Actions onCancel={onCancel}>
        <Button kind="danger" onClick={() => void run(onDelete)} busy={busy} busyLabel="Deleting…">
          {label}
        </Button>
      </Actions>
    </>
  );
}
