import type { ReactNode } from "react";

import type { PagedList } from "@/lib/listing";
import { PAGE_SIZE } from "@/lib/listing";
import { Pagination } from "./Pagination";
import { Alert, Button, Loading } from "./ui";

/** A page of a list (`usePagedList`) as it loads, fails (with a way to try
 * again), is empty (when `empty` says so) or shows its rows and pages.
 * `label` names the list; `pagesLabel`, its pages. */
export function PagedListView<T>({
  list,
  label,
  pagesLabel,
  loading,
  empty,
  row,
}: {
  list: PagedList<T>;
  label: string;
  pagesLabel: string;
  loading: string;
  empty?: ReactNode;
  row: (entry: T) => ReactNode;
}) {
  const { listing } = list;
  if (listing.status === "loading") return <Loading what={loading} />;
  if (listing.status === "error") {
    return (
      <div className="flex flex-col items-start gap-3">
        <Alert tone="error">{listing.message}</Alert>
        <Button kind="secondary" onClick={() => void list.load()}>
          Try again
        </Button>
      </div>
    );
  }
  if (listing.page.count === 0 && empty !== undefined) return empty;
  return (
    <>
      <ul className="divide-y divide-slate-200" aria-label={label}>
        {listing.page.data.map(row)}
      </ul>
      <Pagination label={pagesLabel} page={list.page} pageSize={PAGE_SIZE} count={listing.page.count} onPage={list.goTo} />
    </>
  );
}

/** One row of a list: what it is, then Edit and (when `onDelete` is given)
 * Delete, whose accessible names say which row they act on. */
export function ListRow({
  name,
  onEdit,
  onDelete,
  children,
}: {
  name: string;
  onEdit: () => void;
  onDelete?: () => void;
  children: ReactNode;
}) {
  return (
    <li className="flex flex-col gap-3 py-4 sm:flex-row sm:items-center">
      <div className="min-w-0 flex-1">{children}</div>
      <div className="flex shrink-0 gap-2">
        <Button kind="secondary" onClick={onEdit} aria-label={`Edit ${name}`}>
          Edit
        </Button>
        {onDelete && (
          <Button kind="danger" onClick={onDelete} aria-label={`Delete ${name}`}>
            Delete
          </Button>
        )}
      </div>
    </li>
  );
}
