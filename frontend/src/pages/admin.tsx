import { useRouter } from "next/router";
import { type FormEvent, useCallback, useEffect, useState } from "react";

import { Dialog } from "@/components/Dialog";
import { Pagination } from "@/components/Pagination";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Button, CheckboxField, Loading, TextField } from "@/components/ui";
import { api, errorMessage, type Page, type User } from "@/lib/api";
import { useRequiredUser } from "@/lib/auth";
import { pageFromQuery, pageWindow } from "@/lib/paging";
import {
  collectProblems,
  confirmationProblem,
  emailProblem,
  hasProblems,
  passwordProblem,
  textProblem,
} from "@/lib/validation";

const PAGE_SIZE = 10;

type Listing = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; page: Page<User> };
type Field = "email" | "fullName" | "password" | "confirmation";

/** Adding a user (`user` null) or changing one; a password is optional
 * when changing. */
function UserForm({ user, onSaved, onCancel }: { user: User | null; onSaved: (text: string) => void; onCancel: () => void }) {
  const [email, setEmail] = useState(user?.email ?? "");
  const [fullName, setFullName] = useState(user?.full_name ?? "");
  const [password, setPassword] = useState("");
  const [confirmation, setConfirmation] = useState("");
  const [isSuperuser, setIsSuperuser] = useState(user?.is_superuser ?? false);
  const [isActive, setIsActive] = useState(user?.is_active ?? true);
  const [problems, setProblems] = useState<Partial<Record<Field, string>>>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const passwordOptional = user !== null;

  async function submit(event: FormEvent) {
    event.preventDefault();
    const settingPassword = !passwordOptional || password.length > 0 || confirmation.length > 0;
    const found = collectProblems<Field>({
      email: emailProblem(email.trim()),
      fullName: textProblem(fullName, "Full name"),
      password: settingPassword ? passwordProblem(password) : null,
      confirmation: settingPassword ? confirmationProblem(password, confirmation) : null,
    });
    setProblems(found);
    setFailure(null);
    if (hasProblems(found)) return;
    setBusy(true);
    const body: Record<string, unknown> = {
      email: email.trim(),
      full_name: fullName.trim() === "" ? null : fullName.trim(),
      is_superuser: isSuperuser,
      is_active: isActive,
    };
    if (settingPassword) body.password = password;
    try {
      if (user) {
        await api.patch(`/users/${user.id}`, body);
        onSaved(`${body.email} has been saved.`);
      } else {
        await api.post("/users/", body);
        onSaved(`${body.email} has been added.`);
      }
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      {failure && <Alert tone="error">{failure}</Alert>}
      <TextField label="Email" type="email" autoComplete="off" required value={email} onChange={setEmail} error={problems.email} />
      <TextField label="Full name" autoComplete="off" value={fullName} onChange={setFullName} error={problems.fullName} />
      <TextField
        label={passwordOptional ? "New password" : "Password"}
        type="password"
        autoComplete="new-password"
        required={!passwordOptional}
        hint={passwordOptional ? "Leave empty to keep the current password." : "8 to 72 characters."}
        value={password}
        onChange={setPassword}
        error={problems.password}
      />
      <TextField
        label={passwordOptional ? "Confirm new password" : "Confirm password"}
        type="password"
        autoComplete="new-password"
        required={!passwordOptional}
        value={confirmation}
        onChange={setConfirmation}
        error={problems.confirmation}
      />
      <CheckboxField
        label="Administrator"
        hint="May see everyone's items and manage users."
        checked={isSuperuser}
        onChange={setIsSuperuser}
      />
      <CheckboxField label="Active" hint="An inactive user cannot log in." checked={isActive} onChange={setIsActive} />
      <div className="flex flex-wrap justify-end gap-2">
        <Button kind="secondary" onClick={onCancel}>
          Cancel
        </Button>
        <Button type="submit" busy={busy} busyLabel="Saving…">
          {user ? "Save user" : "Add user"}
        </Button>
      </div>
    </form>
  );
}

function DeleteUser({ user, onDeleted, onCancel }: { user: User; onDeleted: () => void; onCancel: () => void }) {
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    setBusy(true);
    setFailure(null);
    try {
      await api.delete(`/users/${user.id}`);
      onDeleted();
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }
  return (
    <>
      <p>{user.email} and all their items will be deleted for good.</p>
      {failure && <Alert tone="error">{failure}</Alert>}
      <div className="flex flex-wrap justify-end gap-2">
        <Button kind="secondary" onClick={onCancel}>
          Cancel
        </Button>
        <Button kind="danger" onClick={() => void remove()} busy={busy} busyLabel="Deleting…">
          Delete user
        </Button>
      </div>
    </>
  );
}

function Badge({ children, tone }: { children: string; tone: "indigo" | "green" | "slate" }) {
  const tones = {
    indigo: "bg-indigo-100 text-indigo-900",
    green: "bg-green-100 text-green-900",
    slate: "bg-slate-200 text-slate-900",
  };
  return <span className={`rounded-full px-2 py-0.5 text-xs font-semibold ${tones[tone]}`}>{children}</span>;
}

export default function AdminPage() {
  const me = useRequiredUser({ superuser: true });
  const router = useRouter();
  const page = pageFromQuery(router.query.page);
  const [listing, setListing] = useState<Listing>({ status: "loading" });
  const [message, setMessage] = useState<string | null>(null);
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);

  const load = useCallback(async () => {
    setListing({ status: "loading" });
    try {
      const { data } = await api.get<Page<User>>("/users/", { params: pageWindow(page, PAGE_SIZE) });
      if (data.data.length === 0 && data.count > 0 && page > 1) {
        void router.replace({ pathname: "/admin", query: { page: Math.ceil(data.count / PAGE_SIZE) } });
        return;
      }
      setListing({ status: "ready", page: data });
    } catch (error) {
      setListing({ status: "error", message: errorMessage(error) });
    }
  }, [page, router]);

  useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect
    if (me && router.isReady) void load();
  }, [me, router.isReady, load]);

  const done = (text: string) => {
    setMessage(text);
    setAdding(false);
    setEditing(null);
    setDeleting(null);
    void load();
  };

  return (
    <AppShell title="Users">
      {!me ? (
        <SessionPending />
      ) : (
        <div className="flex flex-col gap-6">
          <div>
            <Button onClick={() => setAdding(true)}>Add user</Button>
          </div>
          {message && <Alert tone="success">{message}</Alert>}
          <section aria-labelledby="user-list" className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
            <h2 id="user-list" className="mb-4 text-lg font-semibold">
              All users
            </h2>
            {listing.status === "loading" && <Loading what="Loading users…" />}
            {listing.status === "error" && (
              <div className="flex flex-col items-start gap-3">
                <Alert tone="error">{listing.message}</Alert>
                <Button kind="secondary" onClick={() => void load()}>
                  Try again
                </Button>
              </div>
            )}
            {listing.status === "ready" && (
              <>
                <ul className="divide-y divide-slate-200" aria-label="Users">
                  {listing.page.data.map((user) => (
                    <li key={user.id} className="flex flex-col gap-3 py-4 sm:flex-row sm:items-center">
                      <div className="min-w-0 flex-1">
                        <p className="font-medium break-words text-slate-900">
                          {user.email}
                          {user.id === me.id && <span className="font-normal text-slate-700"> (you)</span>}
                        </p>
                        <p className="text-sm text-slate-700">{user.full_name || "No name given"}</p>
                        <p className="mt-1 flex gap-2">
                          {user.is_superuser ? <Badge tone="indigo">Administrator</Badge> : <Badge tone="slate">User</Badge>}
                          {user.is_active ? <Badge tone="green">Active</Badge> : <Badge tone="slate">Inactive</Badge>}
                        </p>
                      </div>
                      <div className="flex shrink-0 gap-2">
                        <Button kind="secondary" onClick={() => setEditing(user)} aria-label={`Edit ${user.email}`}>
                          Edit
                        </Button>
                        {user.id !== me.id && (
                          <Button kind="danger" onClick={() => setDeleting(user)} aria-label={`Delete ${user.email}`}>
                            Delete
                          </Button>
                        )}
                      </div>
                    </li>
                  ))}
                </ul>
                <Pagination
                  label="User pages"
                  page={page}
                  pageSize={PAGE_SIZE}
                  count={listing.page.count}
                  onPage={(next) =>
                    void router.push({ pathname: "/admin", query: next > 1 ? { page: next } : {} })
                  }
                />
              </>
            )}
          </section>
          <Dialog open={adding} title="Add a user" onClose={() => setAdding(false)}>
            {adding && <UserForm user={null} onSaved={done} onCancel={() => setAdding(false)} />}
          </Dialog>
          <Dialog open={editing !== null} title="Edit user" onClose={() => setEditing(null)}>
            {editing && <UserForm key={editing.id} user={editing} onSaved={done} onCancel={() => setEditing(null)} />}
          </Dialog>
          <Dialog open={deleting !== null} title="Delete user?" onClose={() => setDeleting(null)}>
            {deleting && (
              <DeleteUser
                key={deleting.id}
                user={deleting}
                onCancel={() => setDeleting(null)}
                onDeleted={() => done(`${deleting.email} has been deleted.`)}
              />
            )}
          </Dialog>
        </div>
      )}
    </AppShell>
  );
}
