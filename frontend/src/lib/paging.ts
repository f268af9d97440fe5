/** The page number in a `?page=` query value: 1 unless a positive integer. */
export function pageFromQuery(value: unknown): number {
  const text = Array.isArray(value) ? value[0] : value;
  if (typeof text !== "string" || !/^[1-9][0-9]{0,5}$/.test(text)) return 1;
  return Number(text);
}

/** The `skip` and `limit` of page `page` (from 1). */
export function pageWindow(page: number, pageSize: number): { skip: number; limit: number } {
  return { skip: (page - 1) * pageSize, limit: pageSize };
}
