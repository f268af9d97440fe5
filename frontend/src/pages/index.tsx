import Link from "next/link";
import { useRouter } from "next/router";
import { useEffect, useState } from "react";

import { Form, SubmitButton } from "@/components/Form";
import { PublicShell } from "@/components/Shells";
import { Alert, linkClass } from "@/components/ui";
import { logIn, signUpIsOpen } from "@/lib/api";
import { useSession } from "@/lib/auth";
import { currentPassword, EMAIL } from "@/lib/fields";
import { useForm } from "@/lib/form";
import { noticeFor, safeReturnPath } from "@/lib/session";

const FIELDS = {
  email: { ...EMAIL, autoComplete: "username" },
  password: currentPassword("Password", "Enter your password."),
};

export default function LoginPage() {
  const router = useRouter();
  const session = useSession();
  const form = useForm(FIELDS);
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

  const submit = form.onSubmit(async ({ email, password }) => {
    await session.begin(await logIn(email.trim(), password));
    await router.replace(next);
  });

  return (
    <PublicShell title="Log in">
      {notice && !form.outcome && (
        <Alert tone={notice.tone} className="mb-4">
          {notice.text}
        </Alert>
      )}
      <Form form={form} onSubmit={submit}>
        <SubmitButton busy={form.busy} busyLabel="Logging in…">
          Log in
        </SubmitButton>
      </Form>
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
