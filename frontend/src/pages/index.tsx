import Link from "next/link";
import { useRouter } from "next/router";
import { type FormEvent, useEffect, useState } from "react";

import { PublicShell } from "@/components/Shells";
import { Alert, Button, linkClass, TextField } from "@/components/ui";
import { errorMessage, logIn, signUpIsOpen } from "@/lib/api";
import { useSession } from "@/lib/auth";
import { noticeFor, safeReturnPath } from "@/lib/session";
import { collectProblems, emailProblem, hasProblems } from "@/lib/validation";

export default function LoginPage() {
  const router = useRouter();
  const session = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [problems, setProblems] = useState<{ email?: string; password?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [signUpOpen, setSignUpOpen] = useState<boolean | null>(null);
  const notice = noticeFor(router.query.notice);
  const next = safeReturnPath(router.query.next) ?? "/dashboard";

  // Someone already signed in goes straight on.
  useEffect(() => {
    if (session.state.status === "signed-in") void router.replace(next);
  }, [session.state.status, router, next]);

  useEffect(() => {
    let live = true;
    void signUpIsOpen().then((open) => live && setSignUpOpen(open));
    return () => {
      live = false;
    };
  }, []);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems({
      email: emailProblem(email.trim()),
      password: password.length === 0 ? "Enter your password." : null,
    });
    setProblems(found);
    setFailure(null);
    if (hasProblems(found)) return;
    setBusy(true);
    try {
      const token = await logIn(email.trim(), password);
      await session.begin(token);
      await router.replace(next);
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }

  return (
    <PublicShell title="Log in">
      {notice && !failure && (
        <Alert tone={notice.tone} className="mb-4">
          {notice.text}
        </Alert>
      )}
      {failure && (
        <Alert tone="error" className="mb-4">
          {failure}
        </Alert>
      )}
      <form onSubmit={submit} noValidate className="flex flex-col gap-4">
        <TextField
          label="Email"
          type="email"
          autoComplete="username"
          required
          value={email}
          onChange={setEmail}
          error={problems.email}
        />
        <TextField
          label="Password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={setPassword}
          error={problems.password}
        />
        <Button type="submit" busy={busy} busyLabel="Logging in…">
          Log in
        </Button>
      </form>
      <div className="mt-6 flex flex-col gap-2 text-sm text-slate-700">
        <Link href="/recover-password" className={linkClass}>
          Forgot your password?
        </Link>
        {signUpOpen !== false && (
          <p>
            No account yet?{" "}
            <Link href="/signup" className={linkClass}>
              Sign up
            </Link>
          </p>
        )}
      </div>
    </PublicShell>
  );
}
