import { useRouter } from "next/router";
import { useState } from "react";

import { Dialog } from "@/components/Dialog";
import { ConfirmDelete, Form, SubmitButton } from "@/components/Form";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Button, Section } from "@/components/ui";
import { api, endSession, type User } from "@/lib/api";
import { useRequiredUser, useSession } from "@/lib/auth";
import { currentPassword, EMAIL, FULL_NAME, newPassword, optionalText } from "@/lib/fields";
import { useForm } from "@/lib/form";
import { noticeFor } from "@/lib/session";

const PROFILE = { fullName: FULL_NAME, email: EMAIL };
const PASSWORD = {
  current: currentPassword("Current password", "Enter your current password."),
  ...newPassword("New password"),
};

function ProfileForm({ user }: { user: User }) {
  const session = useSession();
  const form = useForm(PROFILE, { fullName: user.full_name ?? "", email: user.email });

  const submit = form.onSubmit(async ({ fullName, email }) => {
    const { data } = await api.patch<User>("/users/me", {
      full_name: optionalText(fullName),
      email: email.trim(),
    });
    session.update(data);
    form.set("email", data.email);
    return "Your profile has been saved.";
  });

  return (
    <Form form={form} onSubmit={submit}>
      <div>
        <SubmitButton busy={form.busy} busyLabel="Saving…">
          Save profile
        </SubmitButton>
      </div>
    </Form>
  );
}

function PasswordForm() {
  const form = useForm(PASSWORD);

  const submit = form.onSubmit(async ({ current, password }) => {
    await api.patch("/users/me/password", { current_password: current, new_password: password });
    form.reset();
    return "Your password has been changed.";
  });

  return (
    <Form form={form} onSubmit={submit}>
      <div>
        <SubmitButton busy={form.busy} busyLabel="Changing…">
          Change password
        </SubmitButton>
      </div>
    </Form>
  );
}

function DeleteAccount({ user }: { user: User }) {
  const [confirming, setConfirming] = useState(false);

  if (user.is_superuser) {
    return <p className="text-slate-700">Administrators cannot delete their own account.</p>;
  }

  return (
    <div className="flex flex-col items-start gap-3">
      <p className="text-slate-700">Deleting your account deletes all your items too. This cannot be undone.</p>
      <Button kind="danger" onClick={() => setConfirming(true)}>
        Delete my account
      </Button>
      <Dialog open={confirming} title="Delete your account?" onClose={() => setConfirming(false)}>
        <ConfirmDelete
          label="Delete my account for good"
          onCancel={() => setConfirming(false)}
          onDelete={async () => {
            await api.delete("/users/me");
            endSession("account-deleted");
          }}
        >
          Your account ({user.email}) and all its items will be deleted for good.
        </ConfirmDelete>
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
