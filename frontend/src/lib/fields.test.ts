import { describe, expect, it } from "vitest";

import { checkFields, currentPassword, EMAIL, FULL_NAME, KEEP_PASSWORD, newPassword, optionalText, text } from "./fields";

describe("a form's fields, checked together", () => {
  const signUp = { fullName: FULL_NAME, email: EMAIL, ...newPassword("Password") };

  it("name each field with a problem", () => {
    const problems = checkFields(signUp, { fullName: "", email: "x", password: "short", confirmation: "other" });
    expect(Object.keys(problems)).toEqual(["email", "password", "confirmation"]);
    expect(problems.email).toMatch(/exactly one @/);
    expect(problems.password).toMatch(/at least 8/);
    expect(problems.confirmation).toMatch(/not the same/);
  });

  it("find none in a form that may be sent", () => {
    const values = { fullName: "", email: " someone@example.com ", password: "long enough", confirmation: "long enough" };
    expect(checkFields(signUp, values)).toEqual({});
  });
});

describe("field descriptions", () => {
  it("label the confirmation after the password", () => {
    const pair = newPassword("New password");
    expect([pair.password.label, pair.confirmation.label]).toEqual(["New password", "Confirm new password"]);
    expect([pair.password.required, pair.password.hint]).toEqual([true, "8 to 72 characters."]);
    expect(pair.confirmation.hint).toBeUndefined();
  });

  it("check a kept password only once one is typed", () => {
    const editing = newPassword("New password", KEEP_PASSWORD);
    expect(editing.password.required).toBe(false);
    expect(checkFields(editing, { password: "", confirmation: "" })).toEqual({});
    expect(checkFields(editing, { password: "", confirmation: "x" })).toEqual({
      password: "Enter a password.",
      confirmation: "The two passwords are not the same.",
    });
    expect(checkFields(editing, { password: "long enough", confirmation: "" })).toEqual({
      confirmation: "Type the password again.",
    });
  });

  it("ask only for the presence of a current password", () => {
    const current = { password: currentPassword("Password", "Enter your password.") };
    expect(checkFields(current, { password: "" })).toEqual({ password: "Enter your password." });
    expect(checkFields(current, { password: "x" })).toEqual({});
  });

  it("require more than white space of a required text, and count an optional one as typed", () => {
    const item = { title: text("Title", true), description: text("Description") };
    expect(checkFields(item, { title: "   ", description: "" })).toEqual({ title: "Enter a title." });
    expect(checkFields(item, { title: ` ${"t".repeat(255)} `, description: ` ${"d".repeat(254)} ` })).toEqual({
      description: "Description can have at most 255 characters.",
    });
  });

  it("send an empty optional text as null", () => {
    expect(optionalText("  ")).toBeNull();
    expect(optionalText(" Nora ")).toBe("Nora");
  });
});
