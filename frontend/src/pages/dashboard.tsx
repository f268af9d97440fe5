import { useRouter } from "next/router";
import { type FormEvent, type ReactNode, useState } from "react";

import { Dialog } from "@/components/Dialog";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Button, TextField } from "@/components/ui";
import { api, endSession, errorMessage, type User } from "@/lib/api";
import { useRequiredUser, useSession } from "@/lib/auth";
import { noticeFor } from "@/lib/session";
import {
  collectProblems,
  confirmationProblem,
  emailProblem,
  hasProblems,
  passwordProblem,
  textProblem,
} from "@/lib/validation";

function Section({ title, children }: { title: string; children: ReactNode }) {
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

function ProfileForm({ user }: { user: User }) {
  const session = useSession();
  const [fullName, setFullName] = useState(user.full_name ?? "");
  const [email, setEmail] = useState(user.email);
  const [problems, setProblems] = useState<{ fullName?: string; email?: string }>({});
  const [result, setResult] = useState<{ tone: "success" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems({ fullName: textProblem(fullName, "Full name"), email: emailProblem(email.trim()) });
    setProblems(found);
    setResult(null);
    if (hasProblems(found)) return;
    setBusy(true);
    try {
      const { data } = await api.patch<User>("/users/me", {
        full_name: fullName.trim() === "" ? null : fullName.trim(),
        email: email.trim(),
      });
      session.update(data);
      setEmail(data.email);
      setResult({ tone: "success", text: "Your profile has been saved." });
    } catch (error) {
      setResult({ tone: "error", text: errorMessage(error) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      {result && <Alert tone={result.tone}>{result.text}</Alert>}
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
      <div>
        <Button type="submit" busy={busy} busyLabel="Saving…">
          Save profile
        </Button>
      </div>
    </form>
  );
}

function PasswordForm() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [problems, setProblems] = useState<{ current?: string; next?: string; confirmation?: string }>({});
  const [result, setResult] = useState<{ tone: "success" | "error"; text: string } | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems({
      current: current.length === 0 ? "Enter your current password." : null,
      next: passwordProblem(next),
      confirmation: confirmationProblem(next, confirmation),
    });
    setProblems(found);
    setResult(null);
    if (hasProblems(found)) return;
    setBusy(true);
    try {
      await api.patch("/users/me/password", { current_password: current, new_password: next });
      setCurrent("");
      setNext("");
      setConfirmation("");
      setResult({ tone: "success", text: "Your password has been changed." });
    } catch (error) {
      setResult({ tone: "error", text: errorMessage(error) });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      {result && <Alert tone={result.tone}>{result.text}</Alert>}
      <TextField
        label="Current password"
        type="password"
        autoComplete="current-password"
        required
        value={current}
        onChange={setCurrent}
        error={problems.current}
      />
      <TextField
        label="New password"
        type="password"
        autoComplete="new-password"
        required
        hint="8 to 72 characters."
        value={next}
        onChange={setNext}
        error={problems.next}
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
      <div>
        <Button type="submit" busy={busy} busyLabel="Changing…">
          Change password
        </Button>
      </div>
    </form>
  );
}

function DeleteAccount({ user }: { user: User }) {
  const [confirming, setConfirming] = useState(false);
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (user.is_superuser) {
    return <p className="text-slate-700">Administrators cannot delete their own account.</p>;
  }

  async function remove() {
    setBusy(true);
    setFailure(null);
    try {
      await api.delete("/users/me");
      endSession("account-deleted");
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }

  return (
    <div className="flex flex-col items-start gap-3">
      <p className="text-slate-700">Deleting your account deletes all your items too. This cannot be undone.</p>
      <Button kind="danger" onClick={() => setConfirming(true)}>
        Delete my account
      </Button>
      <Dialog open={confirming} title="Delete your account?" onClose={() => setConfirming(false)}>
        <p>Your account ({user.email}) and all its items will be deleted for good.</p>
        {failure && <Alert tone="error">{failure}</Alert>}
        <div className="flex flex-wrap justify-end gap-2">
          <Button kind="secondary" onClick={() => setConfirming(false)}>
            Cancel
          </Button>
          <Button kind="danger" onClick={() => void remove()} busy={busy} busyLabel="Deleting…">
            Delete my account for good
          </Button>
        </div>
      </Dialog>
    </div>
  );
}

export default function DashboardPage() {
  const user = useRequiredUser();
  const router = useRouter();
  const notice = noticeFor(router.query.notice);
  return (
    <AppShell title="Dashboard">
      {!user ? (
        <SessionPending />
      ) : (
        <div className="flex flex-col gap-6">
          {notice && <Alert tone={notice.tone}>{notice.text}</Alert>}
          <p className="text-slate-700">
            Hello, {user.full_name || user.email}
            {user.is_superuser ? " (administrator)" : ""}.
          </p>
          <div className="grid gap-6 lg:grid-cols-2">
            <Section title="Profile">
              <ProfileForm key={user.id} user={user} />
            </Section>
            <Section title="Password">
              <PasswordForm />
            </Section>
          </div>
          <Section title="Delete account">
            <DeleteAccount user={user} />
          </Section>
        </div>
      )}
    </AppShell>
  );
}
