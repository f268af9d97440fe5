import { describe, expect, it } from "vitest";

import { pageFromQuery, pageWindow } from "./paging";
import { noticeFor, safeReturnPath } from "./session";

describe("the login page's query", () => {
  it("shows only the notices it knows", () => {
    expect(noticeFor("session-ended")?.text).toMatch(/session has ended/);
    expect(noticeFor("<script>")).toBeNull();
    expect(noticeFor("constructor")).toBeNull();
    expect(noticeFor(["session-ended"])).toBeNull();
  });

  it("returns only to a path on this site", () => {
    expect(safeReturnPath("/items?page=2")).toBe("/items?page=2");
    expect(safeReturnPath("//evil.example/")).toBeNull();
    expect(safeReturnPath("https://evil.example/")).toBeNull();
    expect(safeReturnPath("/\\evil.example")).toBeNull();
    expect(safeReturnPath(undefined)).toBeNull();
  });
});

describe("paging", () => {
  it("reads the page number, 1 when absent or odd", () => {
    expect(pageFromQuery("3")).toBe(3);
    expect(pageFromQuery(["2", "5"])).toBe(2);
    for (const odd of [undefined, "", "0", "-1", "1.5", "abc", "99999999"]) expect(pageFromQuery(odd)).toBe(1);
  });

  it("turns a page into skip and limit", () => {
    expect(pageWindow(1, 10)).toEqual({ skip: 0, limit: 10 });
    expect(pageWindow(3, 10)).toEqual({ skip: 20, limit: 10 });
  });
});
