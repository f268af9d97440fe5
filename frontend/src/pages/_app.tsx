import "@/styles/globals.css";

import type { AppProps } from "next/app";
import Head from "next/head";

import { SessionProvider } from "@/lib/auth";

export default function App({ Component, pageProps }: AppProps) {
  return (
    <SessionProvider>
      <Head>
        <meta name="viewport" content="width=device-width, initial-scale=1" />
      </Head>
      <Component {...pageProps} />
    </SessionProvider>
  );
}
