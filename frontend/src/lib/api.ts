import axios, { AxiosError } from "axios";
import Router from "next/router";

import { type ApiFailure, describeFailure } from "./errors";
import { forgetToken, readToken } from "./session";

/** The API on this same origin, in the FastAPI template's layout. */
export const api = axios.create({ baseURL: "/api/v1", timeout: 20000 });

api.interceptors.request.use((config) => {
  const token = readToken();
  if (token) config.headers.set("Authorization", `Bearer ${token}`);
  return config;
});

// A 401 anywhere means the token is missing, expired or no longer accepted:
// forget it and send the person to log in again, saying why.
api.interceptors.response.use(undefined, (error: unknown) => {
  if (error instanceof AxiosError && error.response?.status === 401) endSession("session-ended");
  return Promise.reject(error);
});

/** Fired on `window` when a session ends without the person asking. */
export const SESSION_ENDED_EVENT = "gatehouse:session-ended";

/** Forgets the token and goes to the login page with a notice. */
export function endSession(notice: string): void {
  forgetToken();
  window.dispatchEvent(new Event(SESSION_ENDED_EVENT));
  if (Router.pathname === "/") return;
  void Router.replace({ pathname: "/", query: { notice } });
}

/** What a failed call said, whatever failed. */
export function failureOf(error: unknown): ApiFailure {
  if (error instanceof AxiosError) {
    if (!error.response) return { status: 0 };
    const retryAfter = Number(error.response.headers["retry-after"]);
    return {
      status: error.response.status,
      body: error.response.data,
      retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined,
    };
  }
  return { status: 0 };
}

/** A sentence for a person about a failed call. */
export function errorMessage(error: unknown): string {
  return describeFailure(failureOf(error));
}

export interface User {
  id: string;
  email: string;
  full_name: string | null;
  is_active: boolean;
  is_superuser: boolean;
  created_at?: string;
}

export interface Item {
  id: string;
  title: string;
  description: string | null;
  owner_id: string;
  created_at?: string;
}

export interface Page<T> {
  data: T[];
  count: number;
}

/** Logs in with the OAuth2 password form the auth service expects. */
export async function logIn(email: string, password: string): Promise<string> {
  const form = new URLSearchParams({ username: email, password });
  const { data } = await api.post<{ access_token: string }>("/login/access-token", form);
  return data.access_token;
}

/** Whether sign-up is open here. The users service refuses a closed
 * sign-up (403) before it reads the body, so an empty body tells without
 * signing anyone up (an open one answers 422). Asked once per tab. */
export async function signUpIsOpen(): Promise<boolean> {
  const KEY = "gatehouse.signup-open";
  const known = window.sessionStorage.getItem(KEY);
  if (known !== null) return known === "true";
  try {
    await api.post("/users/signup", {});
    return true;
  } catch (error) {
    const { status } = failureOf(error);
    if (status !== 403 && status !== 422) return true; // Unsure: the sign-up page will tell.
    const open = status === 422;
    window.sessionStorage.setItem(KEY, String(open));
    return open;
  }
}
