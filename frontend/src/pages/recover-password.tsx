import Link from "next/link";
import { type FormEvent, useState } from "react";

import { PublicShell } from "@/components/Shells";
import { Alert, Button, linkClass, TextField } from "@/components/ui";
import { api, errorMessage } from "@/lib/api";
import { emailProblem } from "@/lib/validation";

export default function RecoverPasswordPage() {
  const [email, setEmail] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [failure, setFailure] = useState<string | null>(null);
  const [sent, setSent] = useState(false);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = emailProblem(email.trim());
    setProblem(found);
    setFailure(null);
    if (found) return;
    setBusy(true);
    try {
      await api.post(`/password-recovery/${encodeURIComponent(email.trim())}`);
      setSent(true);
    } catch (error) {
      setFailure(errorMessage(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <PublicShell title="Recover your password">
      {sent ? (
        <Alert tone="success">
          If an account uses {email.trim()}, a link to choose a new password is on its way there. It works once, within
          an hour.
        </Alert>
      ) : (
        <>
          <p className="mb-4 text-slate-700">We will mail you a link to choose a new password.</p>
          {failure && (
            <Alert tone="error" className="mb-4">
              {failure}
            </Alert>
          )}
          <form onSubmit={submit} noValidate className="flex flex-col gap-4">
            <TextField
              label="Email"
              type="email"
              autoComplete="email"
              required
              value={email}
              onChange={setEmail}
              error={problem ?? undefined}
            />
            <Button type="submit" busy={busy} busyLabel="Sending…">
              Send the link
            </Button>
          </form>
        </>
      )}
      <p className="mt-6 text-sm">
        <Link href="/" className={linkClass}>
          Back to log in
        </Link>
      </p>
    </PublicShell>
  );
}
