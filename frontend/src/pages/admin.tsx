import { useState } from "react";

import { Dialog } from "@/components/Dialog";
import { Actions, ConfirmDelete, Form, SubmitButton } from "@/components/Form";
import { ListRow, PagedListView } from "@/components/Listing";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Button, CheckboxField, Section } from "@/components/ui";
import { api, type User } from "@/lib/api";
import { useRequiredUser } from "@/lib/auth";
import { EMAIL, FULL_NAME, KEEP_PASSWORD, newPassword, optionalText } from "@/lib/fields";
import { useForm } from "@/lib/form";
import { usePagedList } from "@/lib/listing";

// Someone else's details: the browser should not offer the administrator's own.
const PERSON = { email: { ...EMAIL, autoComplete: "off" }, fullName: { ...FULL_NAME, autoComplete: "off" } };
/** A new user has a password; a user being changed keeps theirs unless a new one is typed. */
const ADDING = { ...PERSON, ...newPassword("Password") };
const EDITING = { ...PERSON, ...newPassword("New password", KEEP_PASSWORD) };

/** Adding a user (`user` null) or changing one. */
function UserForm({ user, onSaved, onCancel }: { user: User | null; onSaved: (text: string) => void; onCancel: () => void }) {
  const form = useForm(user ? EDITING : ADDING, { email: user?.email, fullName: user?.full_name ?? undefined });
  const [isSuperuser, setIsSuperuser] = useState(user?.is_superuser ?? false);
  const [isActive, setIsActive] = useState(user?.is_active ?? true);

  const submit = form.onSubmit(async ({ email, fullName, password }) => {
    const body: Record<string, unknown> = {
      email: email.trim(),
      full_name: optionalText(fullName),
      is_superuser: isSuperuser,
      is_active: isActive,
    };
    // Checked already: empty only when the current one is kept.
    if (password !== "") body.password = password;
    if (user) {
      await api.patch(`/users/${user.id}`, body);
      onSaved(`${body.email} has been saved.`);
    } else {
      await api.post("/users/", body);
      onSaved(`${body.email} has been added.`);
    }
  });

  return (
    <Form form={form} onSubmit={submit}>
      <CheckboxField
        label="Administrator"
        hint="May see everyone's items and manage users."
        checked={isSuperuser}
        onChange={setIsSuperuser}
      />
      <CheckboxField label="Active" hint="An inactive user cannot log in." checked={isActive} onChange={setIsActive} />
      <Actions onCancel={onCancel}>
        <SubmitButton busy={form.busy} busyLabel="Saving…">
          {user ? "Save user" : "Add user"}
        </SubmitButton>
      </Actions>
    </Form>
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
  const list = usePagedList<User>("/users/", me);
  const [message, setMessage] = useState<string | null>(null);
  const [adding, setAdding] = useState(false);
  const [editing, setEditing] = useState<User | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);

  const done = (text: string) => {
    setMessage(text);
    setAdding(false);
    setEditing(null);
    setDeleting(null);
    void list.load();
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
          <Section title="All users">
            <PagedListView
              list={list}
              label="Users"
              pagesLabel="User pages"
              loading="Loading users…"
              row={(user) => (
                <ListRow
                  key={user.id}
                  name={user.email}
                  onEdit={() => setEditing(user)}
                  onDelete={user.id === me.id ? undefined : () => setDeleting(user)}
                >
                  <p className="font-medium break-words text-slate-900">
                    {user.email}
                    {user.id === me.id && <span className="font-normal text-slate-700"> (you)</span>}
                  </p>
                  <p className="text-sm text-slate-700">{user.full_name || "No name given"}</p>
                  <p className="mt-1 flex gap-2">
                    {user.is_superuser ? <Badge tone="indigo">Administrator</Badge> : <Badge tone="slate">User</Badge>}
                    {user.is_active ? <Badge tone="green">Active</Badge> : <Badge tone="slate">Inactive</Badge>}
                  </p>
                </ListRow>
              )}
            />
          </Section>
          <Dialog open={adding} title="Add a user" onClose={() => setAdding(false)}>
            {adding && <UserForm user={null} onSaved={done} onCancel={() => setAdding(false)} />}
          </Dialog>
          <Dialog open={editing !== null} title="Edit user" onClose={() => setEditing(null)}>
            {editing && <UserForm key={editing.id} user={editing} onSaved={done} onCancel={() => setEditing(null)} />}
          </Dialog>
          <Dialog open={deleting !== null} title="Delete user?" onClose={() => setDeleting(null)}>
            {deleting && (
              <ConfirmDelete
                key={deleting.id}
                label="Delete user"
                onCancel={() => setDeleting(null)}
                onDelete={async () => {
                  await api.delete(`/users/${deleting.id}`);
                  done(`${deleting.email} has been deleted.`);
                }}
              >
                {deleting.email} and all their items will be deleted for good.
              </ConfirmDelete>
            )}
          </Dialog>
        </div>
      )}
    </AppShell>
  );
}
