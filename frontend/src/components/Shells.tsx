import Head from "next/head";
import Link from "next/link";
import { useRouter } from "next/router";
import type { ReactNode } from "react";

import { useSession } from "@/lib/auth";
import { Button, focusClass, linkClass } from "./ui";

/** What every page starts with: its title, and a link past the header. */
function PageStart({ title }: { title: string }) {
  return (
    <>
      <Head>
        <title>{`${title} · Gatehouse`}</title>
      </Head>
      <a
        href="#main"
        className={`sr-only rounded bg-white px-3 py-2 text-indigo-800 focus:not-sr-only focus:absolute focus:left-2 focus:top-2 ${focusClass}`}
      >
        Skip to content
      </a>
    </>
  );
}

/** Pages for someone not signed in: a centred card. */
export function PublicShell({ title, children }: { title: string; children: ReactNode }) {
  return (
    <>
      <PageStart title={title} />
      <header className="px-4 pt-8 text-center">
        <Link href="/" className={`text-xl font-bold text-slate-900 ${focusClass} rounded-sm`}>
          Gatehouse
        </Link>
      </header>
      <main id="main" className="mx-auto w-full max-w-md px-4 py-8">
        <div className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm sm:p-8">
          <h1 className="mb-6 text-2xl font-bold text-slate-900">{title}</h1>
          {children}
        </div>
        <p className="mt-6 text-center text-sm text-slate-700">
          <a href="/docs" className={linkClass}>
            API documentation
          </a>
        </p>
      </main>
    </>
  );
}

/** The way back to the login page, under a public page's card. */
export function BackToLogIn() {
  return (
    <p className="mt-6 text-sm">
      <Link href="/" className={linkClass}>
        Back to log in
      </Link>
    </p>
  );
}

const NAV = [
  { href: "/dashboard", label: "Dashboard" },
  { href: "/items", label: "Items" },
];

/** Pages for a signed-in person: navigation, who they are, log out. */
export function AppShell({ title, children }: { title: string; children: ReactNode }) {
  const { state, logOut } = useSession();
  const router = useRouter();
  const user = state.status === "signed-in" ? state.user : null;
  const links = user?.is_superuser ? [...NAV, { href: "/admin", label: "Admin" }] : NAV;
  return (
    <>
      <PageStart title={title} />
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-5xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
          <Link href="/dashboard" className={`text-lg font-bold text-slate-900 ${focusClass} rounded-sm`}>
            Gatehouse
          </Link>
          <nav aria-label="Main" className="order-last w-full sm:order-none sm:w-auto">
            <ul className="flex gap-4">
              {links.map((link) => (
                <li key={link.href}>
                  <Link
                    href={link.href}
                    aria-current={router.pathname === link.href ? "page" : undefined}
                    className={`rounded-sm px-1 py-2 text-sm font-medium ${focusClass} ${
                      router.pathname === link.href
                        ? "text-indigo-800 underline decoration-2 underline-offset-8"
                        : "text-slate-700 hover:text-slate-900"
                    }`}
                  >
                    {link.label}
                  </Link>
                </li>
              ))}
              <li>
                <a href="/docs" className={`rounded-sm px-1 py-2 text-sm font-medium text-slate-700 hover:text-slate-900 ${focusClass}`}>
                  API docs
                </a>
              </li>
            </ul>
          </nav>
          <div className="ml-auto flex items-center gap-3">
            {user && (
              <span className="hidden max-w-56 truncate text-sm text-slate-700 md:inline" title={user.email}>
                {user.full_name || user.email}
              </span>
            )}
            <Button kind="secondary" onClick={logOut}>
              Log out
            </Button>
          </div>
        </div>
      </header>
      <main id="main" className="mx-auto w-full max-w-5xl px-4 py-8">
        <h1 className="mb-6 text-2xl font-bold text-slate-900">{title}</h1>
        {children}
      </main>
    </>
  );
}

/** What a guarded page shows until its user is known. */
export function SessionPending() {
  const { state, reload } = useSession();
  if (state.status === "error") {
    return (
      <div className="flex flex-col items-start gap-3">
        <p role="alert" className="text-red-800">
          {state.message}
        </p>
        <Button kind="secondary" onClick={() => void reload()}>
          Try again
        </Button>
      </div>
    );
  }
  return (
    <p role="status" className="py-6 text-slate-700">
      Loading your account…
    </p>
  );
}
