import Link from "next/link";

import { PublicShell } from "@/components/Shells";
import { linkClass } from "@/components/ui";

export default function NotFoundPage() {
  return (
    <PublicShell title="Page not found">
      <p className="text-slate-700">There is no page at this address. It may have moved, or the link may be mistyped.</p>
      <p className="mt-6 flex flex-col gap-2 text-sm">
        <Link href="/dashboard" className={linkClass}>
          Go to your dashboard
        </Link>
        <Link href="/" className={linkClass}>
          Log in
        </Link>
      </p>
    </PublicShell>
  );
}
