import { Button } from "./ui";

/** "Showing 11–20 of 30", with the previous and next pages. */
export function Pagination({
  page,
  pageSize,
  count,
  onPage,
  label,
}: {
  page: number;
  pageSize: number;
  count: number;
  onPage: (page: number) => void;
  label: string;
}) {
  const pages = Math.max(1, Math.ceil(count / pageSize));
  const first = count === 0 ? 0 : (page - 1) * pageSize + 1;
  const last = Math.min(count, page * pageSize);
  return (
    <nav aria-label={label} className="flex flex-wrap items-center justify-between gap-3 pt-4">
      <p className="text-sm text-slate-700" aria-live="polite">
        Showing {first}–{last} of {count} · page {page} of {pages}
      </p>
      <div className="flex gap-2">
        <Button kind="secondary" onClick={() => onPage(page - 1)} disabled={page <= 1}>
          Previous page
        </Button>
        <Button kind="secondary" onClick={() => onPage(page + 1)} disabled={page >= pages}>
          Next page
        </Button>
      </div>
    </nav>
  );
}
