#!/usr/bin/env node
// A stand-in for a web browser, for driving mcp-remote headlessly in
// mcpgate's end-to-end tests:
//
//   node browser.mjs <authorization url>
//
// mcp-remote opens the authorization URL with the `open` package, which on
// Linux without a desktop runs xdg-open, which runs $BROWSER. The tests
// point BROWSER at a wrapper that runs this script. It does what a browser
// with a signed-in, consenting user does against the Clerk emulator: GET
// the URL and follow the redirects, the last of which lands on mcp-remote's
// loopback callback server with the code (or an OAuth error) and completes
// its flow. It prints nothing that carries the code; failures go to stderr
// with the status only.
//
//   MCPGATE_BROWSER_LOG=<file>   append the scope of each URL opened

import { appendFileSync } from 'node:fs';

const MAX_REDIRECTS = 10;

async function main() {
  const target = process.argv[2];
  if (!target) throw new Error('usage: browser.mjs <url>');
  let next = new URL(target);
  // MCPGATE_BROWSER_LOG, when set, gets one line per page opened: the
  // scope it asks for (JSON string), so a test can count authorizations.
  if (process.env.MCPGATE_BROWSER_LOG) {
    appendFileSync(process.env.MCPGATE_BROWSER_LOG, JSON.stringify(next.searchParams.get('scope') ?? '') + '\n');
  }
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await fetch(next, { redirect: 'manual' });
    await res.arrayBuffer().catch(() => {});
    const location = res.headers.get('location');
    if (res.status < 300 || res.status > 399 || !location) {
      if (res.status >= 400) throw new Error(`HTTP ${res.status} from ${next.origin}${next.pathname}`);
      return;
    }
    next = new URL(location, next);
  }
  throw new Error(`more than ${MAX_REDIRECTS} redirects`);
}

main().catch((err) => {
  console.error(`browser.mjs: ${err.message}`);
  process.exit(1);
});
