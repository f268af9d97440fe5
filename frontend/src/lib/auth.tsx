import { useRouter } from "next/router";
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from "react";

import { api, endSession, SESSION_ENDED_EVENT, errorMessage, failureOf, type User } from "./api";
import { endsSession } from "./errors";
import { readToken, storeToken } from "./session";

type SessionState =
  | { status: "loading" }
  // `ended`: the session ended on its own and the login page is on its way.
  | { status: "anonymous"; ended?: boolean }
  | { status: "signed-in"; user: User }
  | { status: "error"; message: string };

interface Session {
  state: SessionState;
  /** Keeps `token` and loads the user it belongs to. */
  begin(token: string): Promise<void>;
  /** Loads the signed-in user again (after a profile change). */
  reload(): Promise<void>;
  /** Replaces the user shown, with what an update returned. */
  update(user: User): void;
  logOut(): void;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ status: "loading" });

  const reload = useCallback(async () => {
    if (!readToken()) {
      setState({ status: "anonymous" });
      return;
    }
    try {
      const { data } = await api.get<User>("/users/me");
      setState({ status: "signed-in", user: data });
    } catch (error) {
      const failure = failureOf(error);
      if (endsSession(failure)) {
        endSession(failure.status === 401 ? "session-ended" : "account-unavailable");
      } else {
        setState({ status: "error", message: errorMessage(error) });
      }
    }
  }, []);

  const router = useRouter();
  useEffect(() => {
    const ended = () => setState({ status: "anonymous", ended: true });
    // Once on the login page, the next guarded page redirects as usual.
    const arrived = () => setState((s) => (s.status === "anonymous" && s.ended ? { status: "anonymous" } : s));
    window.addEventListener(SESSION_ENDED_EVENT, ended);
    router.events.on("routeChangeComplete", arrived);
    return () => {
      window.removeEventListener(SESSION_ENDED_EVENT, ended);
      router.events.off("routeChangeComplete", arrived);
    };
  }, [router.events]);

  useEffect(() => {
    // The token is in local storage, which only the browser has: read it
    // once the page is running there.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    void reload();
  }, [reload]);

  const session = useMemo<Session>(
    () => ({
      state,
      begin: async (token) => {
        storeToken(token);
        setState({ status: "loading" });
        await reload();
      },
      reload,
      update: (user) => setState({ status: "signed-in", user }),
      logOut: () => endSession("logged-out"),
    }),
    [state, reload],
  );

  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}

/** The signed-in user for a page that needs one: anyone else is sent to
 * log in (and back here after), a non-administrator away from an
 * administrators' page. Null until the user is known. */
export function useRequiredUser(options: { superuser?: boolean } = {}): User | null {
  const { state } = useSession();
  const router = useRouter();
  const wantsSuperuser = options.superuser ?? false;
  useEffect(() => {
    if (!router.isReady) return;
    if (state.status === "anonymous" && !state.ended) {
      void router.replace({ pathname: "/", query: { notice: "login-required", next: router.asPath } });
    } else if (state.status === "signed-in" && wantsSuperuser && !state.user.is_superuser) {
      void router.replace({ pathname: "/dashboard", query: { notice: "admin-only" } });
    }
  }, [state, router, wantsSuperuser]);
  if (state.status !== "signed-in") return null;
  if (wantsSuperuser && !state.user.is_superuser) return null;
  return state.user;
}
