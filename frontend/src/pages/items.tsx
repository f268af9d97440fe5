import { useRouter } from "next/router";
import { type FormEvent, useCallback, useEffect, useState } from "react";

import { Dialog } from "@/components/Dialog";
import { Pagination } from "@/components/Pagination";
import { AppShell, SessionPending } from "@/components/Shells";
import { Alert, Button, Loading, TextField } from "@/components/ui";
import { api, errorMessage, type Item, type Page } from "@/lib/api";
import { useRequiredUser } from "@/lib/auth";
import { pageFromQuery, pageWindow } from "@/lib/paging";
import { collectProblems, hasProblems, textProblem } from "@/lib/validation";

const PAGE_SIZE = 10;

type Listing = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; page: Page<Item> };

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
  const [title, setTitle] = useState(item?.title ?? "");
  const [description, setDescription] = useState(item?.description ?? "");
  const [problems, setProblems] = useState<{ title?: string; description?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const found = collectProblems({
      title: textProblem(title.trim(), "Title", true),
      description: textProblem(description, "Description"),
    });
    setProblems(found);
    setFailure(null);
    if (hasProblems(found)) return;
    setBusy(true);
    const body = { title: title.trim(), description: description.trim() === "" ? null : description.trim() };
    try {
      if (item) {
        await api.put(`/items/${item.id}`, body);
        onSaved(`“${body.title}” has been saved.`);
      } else {
        await api.post("/items/", body);
        setTitle("");
        setDescription("");
        onSaved(`“${body.title}” has been added.`);
      }
    } catch (error) {
      setFailure(errorMessage(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form onSubmit={submit} noValidate className="flex flex-col gap-4">
      {failure && <Alert tone="error">{failure}</Alert>}
      <TextField label="Title" required value={title} onChange={setTitle} error={problems.title} />
      <TextField label="Description" value={description} onChange={setDescription} error={problems.description} />
      <div className="flex flex-wrap justify-end gap-2">
        {onCancel && (
          <Button kind="secondary" onClick={onCancel}>
            Cancel
          </Button>
        )}
        <Button type="submit" busy={busy} busyLabel="Saving…">
          {item ? "Save item" : "Add item"}
        </Button>
      </div>
    </form>
  );
}

function DeleteItem({ item, onDeleted, onCancel }: { item: Item; onDeleted: () => void; onCancel: () => void }) {
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function remove() {
    setBusy(true);
    setFailure(null);
    try {
      await api.delete(`/items/${item.id}`);
      onDeleted();
    } catch (error) {
      setFailure(errorMessage(error));
      setBusy(false);
    }
  }
  return (
    <>
      <p>“{item.title}” will be deleted for good.</p>
      {failure && <Alert tone="error">{failure}</Alert>}
      <div className="flex flex-wrap justify-end gap-2">
        <Button kind="secondary" onClick={onCancel}>
          Cancel
        </Button>
        <Button kind="danger" onClick={() => void remove()} busy={busy} busyLabel="Deleting…">
          Delete item
        </Button>
      </div>
    </>
  );
}

export default function ItemsPage() {
  const user = useRequiredUser();
  const router = useRouter();
  const page = pageFromQuery(router.query.page);
  const [listing, setListing] = useState<Listing>({ status: "loading" });
  const [message, setMessage] = useState<string | null>(null);
  const [editing, setEditing] = useState<Item | null>(null);
  const [deleting, setDeleting] = useState<Item | null>(null);

  const load = useCallback(async () => {
    setListing({ status: "loading" });
    try {
      const { data } = await api.get<Page<Item>>("/items/", { params: pageWindow(page, PAGE_SIZE) });
      // Past the last page (after deleting its last item): go back one.
      if (data.data.length === 0 && data.count > 0 && page > 1) {
        void router.replace({ pathname: "/items", query: { page: Math.ceil(data.count / PAGE_SIZE) } });
        return;
      }
      setListing({ status: "ready", page: data });
    } catch (error) {
      setListing({ status: "error", message: errorMessage(error) });
    }
  }, [page, router]);

  useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect
    if (user && router.isReady) void load();
  }, [user, router.isReady, load]);

  const goTo = (next: number) => void router.push({ pathname: "/items", query: next > 1 ? { page: next } : {} });
  const saved = (text: string) => {
    setMessage(text);
    setEditing(null);
    void load();
  };

  return (
    <AppShell title={user?.is_superuser ? "Items (everyone’s)" : "Your items"}>
      {!user ? (
        <SessionPending />
      ) : (
        <div className="flex flex-col gap-6">
          <section aria-labelledby="new-item" className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
            <h2 id="new-item" className="mb-4 text-lg font-semibold">
              New item
            </h2>
            <ItemForm item={null} onSaved={saved} />
          </section>
          {message && <Alert tone="success">{message}</Alert>}
          <section aria-labelledby="item-list" className="rounded-lg border border-slate-200 bg-white p-6 shadow-sm">
            <h2 id="item-list" className="mb-4 text-lg font-semibold">
              {user.is_superuser ? "All items" : "Your items"}
            </h2>
            {listing.status === "loading" && <Loading what="Loading items…" />}
            {listing.status === "error" && (
              <div className="flex flex-col items-start gap-3">
                <Alert tone="error">{listing.message}</Alert>
                <Button kind="secondary" onClick={() => void load()}>
                  Try again
                </Button>
              </div>
            )}
            {listing.status === "ready" && listing.page.count === 0 && (
              <p className="py-6 text-slate-700">You have no items yet. Add one above.</p>
            )}
            {listing.status === "ready" && listing.page.count > 0 && (
              <>
                <ul className="divide-y divide-slate-200" aria-label="Items">
                  {listing.page.data.map((item) => (
                    <li key={item.id} className="flex flex-col gap-3 py-4 sm:flex-row sm:items-center">
                      <div className="min-w-0 flex-1">
                        <p className="font-medium break-words text-slate-900">{item.title}</p>
                        {item.description && (
                          <p className="text-sm break-words text-slate-700">{item.description}</p>
                        )}
                      </div>
                      <div className="flex shrink-0 gap-2">
                        <Button kind="secondary" onClick={() => setEditing(item)} aria-label={`Edit “${item.title}”`}>
                          Edit
                        </Button>
                        <Button kind="danger" onClick={() => setDeleting(item)} aria-label={`Delete “${item.title}”`}>
                          Delete
                        </Button>
                      </div>
                    </li>
                  ))}
                </ul>
                <Pagination
                  label="Item pages"
                  page={page}
                  pageSize={PAGE_SIZE}
                  count={listing.page.count}
                  onPage={goTo}
                />
              </>
            )}
          </section>
          <Dialog open={editing !== null} title="Edit item" onClose={() => setEditing(null)}>
            {editing && <ItemForm key={editing.id} item={editing} onSaved={saved} onCancel={() => setEditing(null)} />}
          </Dialog>
          <Dialog open={deleting !== null} title="Delete item?" onClose={() => setDeleting(null)}>
            {deleting && (
              <DeleteItem
                key={deleting.id}
                item={deleting}
                onCancel={() => setDeleting(null)}
                onDeleted={() => {
                  setMessage(`“${deleting.title}” has been deleted.`);
                  setDeleting(null);
                  void load();
                }}
              />
            )}
          </Dialog>
        </div>
      )}
    </AppShell>
  );
}
