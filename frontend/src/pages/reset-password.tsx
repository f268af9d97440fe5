import Link from "next/link";
import { useRouter } from "next/router";

import { Form, SubmitButton } from "@/components/Form";
import { BackToLogIn, PublicShell } from "@/components/Shells";
import { Alert, linkClass, Loading } from "@/components/ui";
import { api } from "@/lib/api";
import { newPassword } from "@/lib/fields";
import { useForm } from "@/lib/form";

const FIELDS = newPassword("New password");

export default function ResetPasswordPage() {
  const router = useRouter();
  const token = typeof router.query.token === "string" ? router.query.token : "";
  const form = useForm(FIELDS);

  const submit = form.onSubmit(async ({ password }) => {
    await api.post("/reset-password/", { token, new_password: password });
    await router.replace({ pathname: "/", query: { notice: "password-reset" } });
  });

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
      <Form
        form={form}
        onSubmit={submit}
        help={
          <>
            {" "}
            <Link href="/recover-password" className={linkClass}>
              Ask for a new link
            </Link>
          </>
        }
      >
        <SubmitButton busy={form.busy} busyLabel="Saving…">
          Set the new password
        </SubmitButton>
      </Form>
    );
  }

  return (
    <PublicShell title="Choose a new password">
      {body}
      <BackToLogIn />
    </PublicShell>
  );
}
