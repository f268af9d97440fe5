import { useState } from "react";

import { Form, SubmitButton } from "@/components/Form";
import { BackToLogIn, PublicShell } from "@/components/Shells";
import { Alert } from "@/components/ui";
import { api } from "@/lib/api";
import { EMAIL } from "@/lib/fields";
import { useForm } from "@/lib/form";

const FIELDS = { email: EMAIL };

export default function RecoverPasswordPage() {
  const form = useForm(FIELDS);
  const [sent, setSent] = useState(false);

  const submit = form.onSubmit(async ({ email }) => {
    await api.post(`/password-recovery/${encodeURIComponent(email.trim())}`);
    setSent(true);
  });

  return (
    <PublicShell title="Recover your password">
      {sent ? (
        <Alert tone="success">
          If an account uses {form.values.email.trim()}, a link to choose a new password is on its way there. It works
          once, within an hour.
        </Alert>
      ) : (
        <>
          <p className="mb-4 text-slate-700">We will mail you a link to choose a new password.</p>
          <Form form={form} onSubmit={submit}>
            <SubmitButton busy={form.busy} busyLabel="Sending…">
              Send the link
            </SubmitButton>
          </Form>
        </>
      )}
      <BackToLogIn />
    </PublicShell>
  );
}
