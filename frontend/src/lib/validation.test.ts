import { describe, expect, it } from "vitest";

import {
  byteLength,
  charCount,
  collectProblems,
  confirmationProblem,
  emailProblem,
  hasProblems,
  passwordProblem,
  textProblem,
} from "./validation";

describe("emailProblem mirrors the services' rules", () => {
  it.each(["someone@example.com", "first.last+tag@sub.example.co", "ünïcode@exämple.de", "a@b.co"])(
    "accepts %s",
    (address) => expect(emailProblem(address)).toBeNull(),
  );

  it.each([
    ["", /Enter/],
    ["no-at-sign", /exactly one @/],
    ["two@@example.com", /exactly one @/],
    ["@example.com", /before the @/],
    ["someone@", /after the @/],
    ["some one@example.com", /spaces/],
    [".someone@example.com", /dot in the wrong place/],
    ["some..one@example.com", /dot in the wrong place/],
    ["someone@localhost", /needs a dot/],
    ["someone@example..com", /dot in the wrong place/],
    ["someone@-example.com", /hyphen/],
    ["someone@example.123", /not a number/],
    ["some(one)@example.com", /character/],
    ["someone@exa_mple.com", /character/],
    [`${"a".repeat(65)}@example.com`, /64 characters/],
    [`a@${"b".repeat(250)}.com`, /255 characters/],
  ])("refuses %j", (address, reason) => expect(emailProblem(address)).toMatch(reason));
});

describe("passwordProblem counts bytes as bcrypt does", () => {
  it("takes 8 to 72 bytes", () => {
    expect(passwordProblem("1234567")).toMatch(/at least 8/);
    expect(passwordProblem("12345678")).toBeNull();
    expect(passwordProblem("x".repeat(72))).toBeNull();
    expect(passwordProblem("x".repeat(73))).toMatch(/at most 72 bytes/);
  });

  it("counts a multi-byte character by its bytes", () => {
    // 24 characters of 3 bytes each: 72 bytes, the most there may be.
    expect(byteLength("€".repeat(24))).toBe(72);
    expect(passwordProblem("€".repeat(24))).toBeNull();
    expect(passwordProblem("€".repeat(25))).toMatch(/at most 72 bytes/);
    // Four characters but eight bytes.
    expect(passwordProblem("éééé")).toBeNull();
  });

  it("refuses an empty password and NUL", () => {
    expect(passwordProblem("")).toMatch(/Enter/);
    expect(passwordProblem("abcd\0efgh")).toMatch(/NUL/);
  });
});

describe("textProblem counts characters as the server does", () => {
  it("allows 255 characters, emoji counted once", () => {
    expect(charCount("😀")).toBe(1);
    expect(textProblem("😀".repeat(255), "Title")).toBeNull();
    expect(textProblem("😀".repeat(256), "Title")).toMatch(/at most 255/);
  });

  it("requires a value only when told", () => {
    expect(textProblem("", "Title", true)).toBe("Enter a title.");
    expect(textProblem("", "Description")).toBeNull();
  });
});

describe("forms", () => {
  it("compare the two passwords", () => {
    expect(confirmationProblem("password1", "password1")).toBeNull();
    expect(confirmationProblem("password1", "password2")).toMatch(/not the same/);
    expect(confirmationProblem("password1", "")).toMatch(/again/);
  });

  it("collect the fields with problems", () => {
    const problems = collectProblems({ email: emailProblem("x"), password: passwordProblem("long enough") });
    expect(Object.keys(problems)).toEqual(["email"]);
    expect(hasProblems(problems)).toBe(true);
    expect(hasProblems(collectProblems({ a: null }))).toBe(false);
  });
});
