import Link from "next/link";
import { useRouter } from "next/router";
import { type FormEvent, useState } from "react";

import { PublicShell } from "@/components/Shells";
import { Alert, Button, linkClass, TextField } from "@/components/ui";
import { api, errorMessage, logIn } from "@/lib/api";
import { useSession } from "@/lib/auth";
import {
  collectProblems,
  confirmationProblem,
  emailProblem,
  hasProblems,
  passwordProblem,
  textProblem,
} from "@/lib/validation";

type Field = "fullName" | "email" | "password" | "confirmation";

export default function SignUpPage() {
  const router = useRouter();
  const session = useSession();
  const [fullName, setFullName] = useState("");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [problems, setProblems] = useState<Partial<Record<Field, string>>>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems<Field>({
      fullName: textProblem(fullName, "Full name"),
      email: emailProblem(email.trim()),
      password: passwordProblem(password),
      confirmation: confirmationProblem(password, confirmation),
    });
    setProblems(found);
    setFailure(null);
    if (hasProblems(found)) return;
    setBusy(true);
    try {
      await api.post("/users/signup", {
        email: email.trim(),
        password,
        full_name: fullName.trim() === "" ? null : fullName.trim(),
      });
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
      return;
    }
    try {
      await session.begin(await logIn(email.trim(), password));
      await router.replace("/dashboard");
    } catch {
      // The account exists; logging in can be done by hand.
      await router.replace("/");
    }
  }

  return (
    <PublicShell title="Sign up">
      {failure && (
        <Alert tone="error" className="mb-4">
          {failure}
        </Alert>
      )}
      <form onSubmit={submit} noValidate className="flex flex-col gap-4">
        <TextField label="Full name" autoComplete="name" value={fullName} onChange={setFullName} error={problems.fullName} />
        <TextField
          label="Email"
          type="email"
          autoComplete="email"
          required
          value={email}
          onChange={setEmail}
          error={problems.email}
        />
        <TextField
          label="Password"
          type="password"
          autoComplete="new-password"
          required
          hint="8 to 72 characters."
          value={password}
          onChange={setPassword}
          error={problems.password}
        />
        <TextField
          label="Confirm password"
          type="password"
          autoComplete="new-password"
          required
          value={confirmation}
          onChange={setConfirmation}
          error={problems.confirmation}
        />
        <Button type="submit" busy={busy} busyLabel="Creating your account…">
          Sign up
        </Button>
      </form>
      <p className="mt-6 text-sm text-slate-700">
        Already have an account?{" "}
        <Link href="/" className={linkClass}>
          Log in
        </Link>
      </p>
    </PublicShell>
  );
}
