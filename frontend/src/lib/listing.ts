import { useRouter } from "next/router";
import { useCallback, useEffect, useState } from "react";

import { api, errorMessage, type Page } from "./api";
import { pageFromQuery, pageWindow } from "./paging";

/** Rows a page of a list shows. */
export const PAGE_SIZE = 10;

export type Listing<T> = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; page: Page<T> };

/** The page of what `endpoint` lists that this page's `?page=N` names,
 * loaded once `viewer` (the signed-in user) is known and again when it
 * changes; `goTo` opens another page of it. */
export function usePagedList<T>(endpoint: string, viewer: object | null) {
  const router = useRouter();
  const page = pageFromQuery(router.query.page);
  const [listing, setListing] = useState<Listing<T>>({ status: "loading" });

  const load = useCallback(async () => {
    setListing({ status: "loading" });
    try {
      const { data } = await api.get<Page<T>>(endpoint, { params: pageWindow(page, PAGE_SIZE) });
      // Past the last page (after deleting its last row): go back one.
      if (data.data.length === 0 && data.count > 0 && page > 1) {
        void router.replace({ pathname: router.pathname, query: { page: Math.ceil(data.count / PAGE_SIZE) } });
        return;
      }
      setListing({ status: "ready", page: data });
    } catch (error) {
      setListing({ status: "error", message: errorMessage(error) });
    }
  }, [endpoint, page, router]);

  useEffect(() => {
    // eslint-disable-next-line react-hooks/set-state-in-effect
    if (viewer && router.isReady) void load();
  }, [viewer, router.isReady, load]);

  const goTo = (next: number) => void router.push({ pathname: router.pathname, query: next > 1 ? { page: next } : {} });

  return { page, listing, load, goTo };
}

export type PagedList<T> = ReturnType<typeof usePagedList<T>>;
