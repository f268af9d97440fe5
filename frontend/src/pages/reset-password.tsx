import Link from "next/link";
import { useRouter } from "next/router";
import { type FormEvent, useState } from "react";

import { PublicShell } from "@/components/Shells";
import { Alert, Button, linkClass, Loading, TextField } from "@/components/ui";
import { api, errorMessage } from "@/lib/api";
import { collectProblems, confirmationProblem, hasProblems, passwordProblem } from "@/lib/validation";

export default function ResetPasswordPage() {
  const router = useRouter();
  const token = typeof router.query.token === "string" ? router.query.token : "";
  const [password, setPassword] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [problems, setProblems] = useState<{ password?: string; confirmation?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems({
      password: passwordProblem(password),
      confirmation: confirmationProblem(password, confirmation),
    });
    setProblems(found);
    setFailure(null);
    if (hasProblems(found)) return;
    setBusy(true);
    try {
      await api.post("/reset-password/", { token, new_password: password });
      await router.replace({ pathname: "/", query: { notice: "password-reset" } });
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }

  let body;
  if (!router.isReady) {
    body = <Loading what="Loading…" />;
  } else if (!token) {
    body = (
      <Alert tone="warning">
        This page needs the link from your password reset mail.{" "}
        <Link href="/recover-password" className={linkClass}>
          Ask for a new link
        </Link>
        .
      </Alert>
    );
  } else {
    body = (
      <>
        {failure && (
          <Alert tone="error" className="mb-4">
            {failure}{" "}
            <Link href="/recover-password" className={linkClass}>
              Ask for a new link
            </Link>
          </Alert>
        )}
        <form onSubmit={submit} noValidate className="flex flex-col gap-4">
          <TextField
            label="New password"
            type="password"
            autoComplete="new-password"
            required
            hint="8 to 72 characters."
            value={password}
            onChange={setPassword}
            error={problems.password}
          />
          <TextField
            label="Confirm new password"
            type="password"
            autoComplete="new-password"
            required
            value={confirmation}
            onChange={setConfirmation}
            error={problems.confirmation}
          />
          <Button type="submit" busy={busy} busyLabel="Saving…">
            Set the new password
          </Button>
        </form>
      </>
    );
  }

  return (
    <PublicShell title="Choose a new password">
      {body}
      <p className="mt-6 text-sm">
        <Link href="/" className={linkClass}>
          Back to log in
        </Link>
      </p>
    </PublicShell>
  );
}
