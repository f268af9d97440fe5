import { describe, expect, it } from "vitest";

import { describeFailure, endsSession } from "./errors";

describe("describeFailure", () => {
  it("puts the services' known details in plain words", () => {
    expect(describeFailure({ status: 400, body: { detail: "Incorrect email or password" } })).toMatch(
      /email or password is not right/,
    );
    expect(describeFailure({ status: 403, body: { detail: "Open user registration is forbidden on this server" } })).toMatch(
      /Sign-up is switched off/,
    );
    expect(describeFailure({ status: 400, body: { detail: "Invalid token" } })).toMatch(/reset link/);
  });

  it("passes an unknown detail on as a sentence", () => {
    expect(describeFailure({ status: 400, body: { detail: "Something odd" } })).toBe("Something odd.");
  });

  it("lists each problem of a 422 by field", () => {
    const body = {
      detail: [
        { type: "string_too_short", loc: ["body", "password"], msg: "String should have at least 8 bytes" },
        {
          type: "value_error",
          loc: ["body", "email"],
          msg: "value is not a valid email address: An email address must have an @-sign.",
        },
        { type: "missing", loc: ["body", "title"], msg: "Field required" },
      ],
    };
    expect(describeFailure({ status: 422, body })).toBe(
      "Password: use at least 8 characters. Email: An email address must have an @-sign. Title is required.",
    );
  });

  it("explains what is not the caller's doing without details", () => {
    expect(describeFailure({ status: 0 })).toMatch(/could not be reached/);
    expect(describeFailure({ status: 500, body: { detail: "Internal server error" } })).toMatch(/went wrong on the server/);
    expect(describeFailure({ status: 502, body: "<html>" })).toMatch(/went wrong on the server/);
    expect(describeFailure({ status: 429, retryAfterSeconds: 7 })).toBe("Too many attempts. Wait 7 seconds and try again.");
    expect(describeFailure({ status: 401, body: { detail: "Token has expired" } })).toBe("Token has expired.");
    expect(describeFailure({ status: 401 })).toMatch(/session has ended/);
  });
});

describe("endsSession", () => {
  it("is true for a refused token and for an account gone or switched off", () => {
    expect(endsSession({ status: 401 })).toBe(true);
    expect(endsSession({ status: 404, body: { detail: "User not found" } })).toBe(true);
    expect(endsSession({ status: 400, body: { detail: "Inactive user" } })).toBe(true);
    expect(endsSession({ status: 500 })).toBe(false);
    expect(endsSession({ status: 0 })).toBe(false);
  });
});
