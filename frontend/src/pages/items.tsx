import { useState } from "react";

import { Dialog } from "@/components/Dialog";
import { Actions, ConfirmDelete, Form, SubmitButton } from "@/components/Form";
import { ListRow, PagedListView } from "@/components/Listing";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Section } from "@/components/ui";
import { api, type Item } from "@/lib/api";
import { useRequiredUser } from "@/lib/auth";
import { optionalText, text } from "@/lib/fields";
import { useForm } from "@/lib/form";
import { usePagedList } from "@/lib/listing";

const FIELDS = { title: text("Title", true), description: text("Description") };

/** The form to add an item, or to change one. */
function ItemForm({
  item,
  onSaved,
  onCancel,
}: {
  item: Item | null;
  onSaved: (message: string) => void;
  onCancel?: () => void;
}) {
  const form = useForm(FIELDS, { title: item?.title, description: item?.description ?? undefined });

  const submit = form.onSubmit(async (values) => {
    const body = { title: values.title.trim(), description: optionalText(values.description) };
    if (item) {
      await api.put(`/items/${item.id}`, body);
      onSaved(`“${body.title}” has been saved.`);
    } else {
      await api.post("/items/", body);
      form.reset();
      onSaved(`“${body.title}” has been added.`);
    }
  });

  return (
    <Form form={form} onSubmit={submit}>
      <Actions onCancel={onCancel}>
        <SubmitButton busy={form.busy} busyLabel="Saving…">
          {item ? "Save item" : "Add item"}
        </SubmitButton>
      </Actions>
    </Form>
  );
}

export default function ItemsPage() {
  const user = useRequiredUser();
  const list = usePagedList<Item>("/items/", user);
  const [message, setMessage] = useState<string | null>(null);
  const [editing, setEditing] = useState<Item | null>(null);
  const [deleting, setDeleting] = useState<Item | null>(null);

  const done = (text: string) => {
    setMessage(text);
    setEditing(null);
    setDeleting(null);
    void list.load();
  };

  return (
    <AppShell title={user?.is_superuser ? "Items (everyone’s)" : "Your items"}>
      {!user ? (
        <SessionPending />
      ) : (
        <div className="flex flex-col gap-6">
          <Section title="New item">
            <ItemForm item={null} onSaved={done} />
          </Section>
          {message && <Alert tone="success">{message}</Alert>}
          <Section title={user.is_superuser ? "All items" : "Your items"}>
            <PagedListView
              list={list}
              label="Items"
              pagesLabel="Item pages"
              loading="Loading items…"
              empty={<p className="py-6 text-slate-700">You have no items yet. Add one above.</p>}
              row={(item) => (
                <ListRow
                  key={item.id}
                  name={`“${item.title}”`}
                  onEdit={() => setEditing(item)}
                  onDelete={() => setDeleting(item)}
                >
                  <p className="font-medium break-words text-slate-900">{item.title}</p>
                  {item.description && <p className="text-sm break-words text-slate-700">{item.description}</p>}
                </ListRow>
              )}
            />
          </Section>
          <Dialog open={editing !== null} title="Edit item" onClose={() => setEditing(null)}>
            {editing && <ItemForm key={editing.id} item={editing} onSaved={done} onCancel={() => setEditing(null)} />}
          </Dialog>
          <Dialog open={deleting !== null} title="Delete item?" onClose={() => setDeleting(null)}>
            {deleting && (
              <ConfirmDelete
                key={deleting.id}
                label="Delete item"
                onCancel={() => setDeleting(null)}
                onDelete={async () => {
                  await api.delete(`/items/${deleting.id}`);
                  done(`“${deleting.title}” has been deleted.`);
                }}
              >
                “{deleting.title}” will be deleted for good.
              </ConfirmDelete>
            )}
          </Dialog>
        </div>
      )}
    </AppShell>
  );
}
