import Link from "next/link";
import { useRouter } from "next/router";

import { Form, SubmitButton } from "@/components/Form";
import { PublicShell } from "@/components/Shells";
import { linkClass } from "@/components/ui";
import { api, logIn } from "@/lib/api";
import { useSession } from "@/lib/auth";
import { EMAIL, FULL_NAME, newPassword, optionalText } from "@/lib/fields";
import { useForm } from "@/lib/form";

const FIELDS = { fullName: FULL_NAME, email: EMAIL, ...newPassword("Password") };

export default function SignUpPage() {
  const router = useRouter();
  const session = useSession();
  const form = useForm(FIELDS);

  const submit = form.onSubmit(async ({ fullName, email, password }) => {
    await api.post("/users/signup", {
      email: email.trim(),
      password,
      full_name: optionalText(fullName),
    });
    try {
      await session.begin(await logIn(email.trim(), password));
      await router.replace("/dashboard");
    } catch {
      // The account exists; logging in can be done by hand.
      await router.replace("/");
    }
  });

  return (
    <PublicShell title="Sign up">
      <Form form={form} onSubmit={submit}>
        <SubmitButton busy={form.busy} busyLabel="Creating your account…">
          Sign up
        </SubmitButton>
      </Form>
      <p className="mt-6 text-sm text-slate-700">
        Already have an account?{" "}
        <Link href="/" className={linkClass}>
          Log in
        </Link>
      </p>
    </PublicShell>
  );
}
