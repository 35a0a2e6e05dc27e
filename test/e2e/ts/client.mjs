#!/usr/bin/env node
// A headless OAuth MCP client on the official TypeScript SDK, for mcpgate's
// end-to-end tests.
//
//   node client.mjs --url <mcp url> [--tool whoami] [--args '{}'] [--scope "..."] [--timeout 60]
//
// It connects to an MCP endpoint protected by OAuth and lets the SDK do what
// a real TypeScript MCP client does on a 401: read the protected resource
// metadata named in WWW-Authenticate, discover the authorization server,
// register dynamically, and start an authorization code flow with PKCE. The
// one thing a person would do in a browser, following the authorization URL
// and consenting, is done here with plain HTTP requests: the authorization
// servers this runs against (the Clerk emulator) consent on the user's behalf
// and redirect straight back with a code.
//
// Then it lists the tools, calls one, and prints exactly one JSON line on
// stdout:
//
//   {"ok":true,"tools":[...],"result":{...},"authorizations":1,"registeredClientId":"...",
//    "resource":"...","authorizationServer":"..."}
//   {"ok":false,"error":"...", ...}   (exit code 1)
//
// "result" is the tool's CallToolResult as the server sent it (content,
// structuredContent, isError). Diagnostics go to stderr. Access tokens,
// refresh tokens, authorization codes and PKCE verifiers are never printed:
// they live only in memory, and every message that leaves the process is
// scrubbed of them.

import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

// Where the authorization server sends the browser back to. Nothing listens
// there: the redirect is read from the Location header and never followed.
// Port 1 makes sure that following it by mistake fails at once instead of
// reaching some unrelated local service.
const REDIRECT_URL = 'http://127.0.0.1:1/callback';

// Redirects followed inside the authorization server (a sign-in page, say)
// before the one back to REDIRECT_URL.
const MAX_AUTHORIZE_HOPS = 10;

// How many times one operation may end in "go and authorize" before we give
// up: the initial authorization plus one step-up is the most a healthy server
// asks for; more means the client and server disagree and would loop.
const MAX_AUTH_ROUNDS = 3;

// The SDK and its dependencies must not write to stdout: the caller reads
// exactly one JSON line there. Send any stray console output to stderr.
console.log = console.info = console.debug = (...args) => console.error(...args);

// Secrets seen during the run, so that messages can be scrubbed of them.
const secrets = new Set();

function remember(...values) {
  for (const v of values) {
    // Short strings could appear in ordinary text by accident; real
    // secrets are long.
    if (typeof v === 'string' && v.length >= 8) secrets.add(v);
  }
}

function scrub(text) {
  let out = String(text);
  for (const s of secrets) out = out.split(s).join('[redacted]');
  return out;
}

/**
 * An in-memory OAuthClientProvider that authorizes without a browser.
 *
 * The SDK drives the flow (discovery, registration, PKCE, token exchange and
 * refresh); this class only stores what the SDK hands it and performs the
 * authorization request when the SDK asks for a redirect.
 */
class HeadlessOAuthProvider {
  constructor({ scope }) {
    this._scope = scope;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._discoveryState = undefined;
    this._state = undefined;
    this._pendingCode = undefined;
    // What the caller reports: how often we went to the authorization
    // endpoint, and with which client.
    this.authorizations = 0;
  }

  get redirectUrl() {
    return REDIRECT_URL;
  }

  get clientMetadata() {
    const metadata = {
      client_name: 'mcpgate e2e (TypeScript SDK)',
      redirect_uris: [REDIRECT_URL],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      // A public client: it proves possession of the code with PKCE, as an
      // MCP client on a user's machine does, and holds no secret.
      token_endpoint_auth_method: 'none',
    };
    // The SDK uses this scope only as its last resort: it prefers the scope
    // of the server's WWW-Authenticate challenge, then the protected
    // resource metadata's scopes_supported (SEP-835).
    if (this._scope) metadata.scope = this._scope;
    return metadata;
  }

  // A fresh state per authorization request, checked on the way back.
  state() {
    this._state = randomBytes(16).toString('base64url');
    return this._state;
  }

  clientInformation() {
    return this._clientInformation;
  }

  // Stored unchanged: the SDK stamps it with the authorization server it
  // came from and refuses to reuse it elsewhere.
  saveClientInformation(info) {
    remember(info.client_secret, info.registration_access_token);
    this._clientInformation = info;
  }

  get registeredClientId() {
    return this._clientInformation?.client_id;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    remember(tokens.access_token, tokens.refresh_token, tokens.id_token);
    this._tokens = tokens;
  }

  saveCodeVerifier(verifier) {
    remember(verifier);
    this._codeVerifier = verifier;
  }

  codeVerifier() {
    if (!this._codeVerifier) throw new Error('no PKCE code verifier saved');
    return this._codeVerifier;
  }

  // Keeping discovery state spares the reconnect after authorizing a second
  // round of metadata requests, and lets us report what was discovered.
  saveDiscoveryState(state) {
    this._discoveryState = state;
  }

  discoveryState() {
    return this._discoveryState;
  }

  get discovered() {
    return this._discoveryState;
  }

  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._clientInformation = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._codeVerifier = undefined;
    if (scope === 'all' || scope === 'discovery') this._discoveryState = undefined;
  }

  /**
   * Called by the SDK where a browser would be sent to the authorization
   * server. We make the request ourselves and follow redirects until one
   * points back at REDIRECT_URL, then keep its code for finishAuth. The
   * SDK then fails the pending MCP request with UnauthorizedError, which is
   * the caller's cue to finish the flow and retry.
   */
  async redirectToAuthorization(authorizationUrl) {
    this.authorizations++;
    let next = new URL(authorizationUrl);
    for (let hop = 0; hop < MAX_AUTHORIZE_HOPS; hop++) {
      const res = await fetch(next, { redirect: 'manual' });
      const body = await res.text().catch(() => '');
      const location = res.headers.get('location');
      if (res.status < 300 || res.status > 399 || !location) {
        // Not a redirect: the authorization server refused the request
        // itself (unknown client, bad redirect_uri) or wants a human.
        throw new Error(
          `authorization request: HTTP ${res.status} from ${next.origin}${next.pathname} instead of a redirect` +
            (body ? `: ${body.slice(0, 300)}` : ''),
        );
      }
      const target = new URL(location, next);
      if (isRedirectUrl(target)) {
        this._pendingCode = this._readAuthorizationResponse(target.searchParams);
        return;
      }
      next = target;
    }
    throw new Error(`authorization request: more than ${MAX_AUTHORIZE_HOPS} redirects without coming back to the client`);
  }

  // RFC 6749 4.1.2: a code (and our state), or an error with a description.
  _readAuthorizationResponse(params) {
    const error = params.get('error');
    if (error) {
      const description = params.get('error_description');
      throw new Error(`authorization request refused: ${error}${description ? `: ${description}` : ''}`);
    }
    if (this._state !== undefined && params.get('state') !== this._state) {
      throw new Error('authorization response: state does not match the request');
    }
    const code = params.get('code');
    if (!code) throw new Error('authorization response carries neither a code nor an error');
    remember(code);
    return code;
  }

  // Hands out the code of the last authorization, once.
  takeCode() {
    const code = this._pendingCode;
    this._pendingCode = undefined;
    return code;
  }
}

function isRedirectUrl(u) {
  const want = new URL(REDIRECT_URL);
  return u.protocol === want.protocol && u.host === want.host && u.pathname === want.pathname;
}

/**
 * Runs op; when it fails because the SDK sent us off to authorize, exchanges
 * the code and runs op again. This is how the SDK expects to be driven: the
 * request that met the 401 (or a 403 asking for more scopes) is rejected
 * with UnauthorizedError once redirectToAuthorization has returned, and
 * transport.finishAuth(code) "will exchange the authorization code for an
 * access token, enabling the next connection attempt to successfully auth"
 * (its doc comment in client/streamableHttp.js).
 */
async function withAuthorization(provider, getTransport, op) {
  for (let round = 0; ; round++) {
    try {
      return await op();
    } catch (err) {
      const code = err instanceof UnauthorizedError ? provider.takeCode() : undefined;
      if (code === undefined || round >= MAX_AUTH_ROUNDS) throw err;
      await getTransport().finishAuth(code);
    }
  }
}

// Connects, lists the tools and calls one, filling in progress as it goes so
// that a failure still reports how far it got.
async function run(provider, progress, { url, tool, args }) {
  let transport;
  let client;

  // A failed initialize closes the client and its transport, and a
  // transport cannot be started twice, so each connection attempt gets new
  // ones. The provider, and with it the tokens, carries over.
  await withAuthorization(provider, () => transport, async () => {
    transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    client = new Client({ name: 'mcpgate-e2e-ts', version: '0.0.0' });
    await client.connect(transport);
  });

  try {
    // Later requests may still need authorization (a tool scope: step-up);
    // they reuse the live connection, so only the request is repeated.
    const listed = await withAuthorization(provider, () => transport, () => client.listTools());
    progress.tools = listed.tools.map((t) => t.name);
    const result = await withAuthorization(provider, () => transport, () => client.callTool({ name: tool, arguments: args }));
    progress.result = result;
    // A tool error is a result, not a protocol failure, but for a test it
    // is a failed run all the same.
    if (result.isError) throw new Error(`tool ${tool} returned an error: ${toolText(result)}`);
  } finally {
    await client.close().catch(() => {});
  }

  function toolText(result) {
    return (result.content ?? [])
      .filter((c) => c.type === 'text')
      .map((c) => c.text)
      .join(' ');
  }
}

function parseCommandLine(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      tool: { type: 'string', default: 'whoami' },
      args: { type: 'string', default: '{}' },
      scope: { type: 'string', default: '' },
      timeout: { type: 'string', default: '60' },
    },
    strict: true,
  });
  if (!values.url) throw new Error('--url is required');
  const url = new URL(values.url); // throws on a malformed URL
  let args;
  try {
    args = JSON.parse(values.args);
  } catch (err) {
    throw new Error(`--args is not JSON: ${err.message}`);
  }
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new Error('--args must be a JSON object');
  }
  const timeoutSeconds = Number(values.timeout);
  if (!(timeoutSeconds > 0)) throw new Error('--timeout must be a positive number of seconds');
  return { url: url.href, tool: values.tool, args, scope: values.scope || undefined, timeoutSeconds };
}

// What the flow did, reported on success and failure alike: it tells a
// failing test how far the client got.
function authReport(provider) {
  if (!provider) return {};
  return {
    authorizations: provider.authorizations,
    registeredClientId: provider.registeredClientId,
    resource: provider.discovered?.resourceMetadata?.resource,
    authorizationServer: provider.discovered?.authorizationServerUrl,
  };
}

let finished = false;

// Writes the one line, then exits: open SSE streams or reconnection timers
// would otherwise keep the process alive after the answer is out. Only the
// first call counts (the timeout and a late result may race).
function finish(report) {
  if (finished) return;
  finished = true;
  const line = scrub(JSON.stringify(report)) + '\n';
  process.stdout.write(line, () => process.exit(report.ok ? 0 : 1));
}

function describe(err) {
  if (!(err instanceof Error)) return String(err);
  // Include the cause chain: fetch failures hide the useful part
  // ("ECONNREFUSED") in err.cause.
  let msg = err.message || err.name;
  for (let c = err.cause; c instanceof Error; c = c.cause) msg += `: ${c.message || c.code || c.name}`;
  return msg;
}

async function main() {
  let opts;
  try {
    opts = parseCommandLine(process.argv.slice(2));
  } catch (err) {
    finish({ ok: false, error: `usage: ${describe(err)}` });
    return;
  }
  const provider = new HeadlessOAuthProvider({ scope: opts.scope });
  const progress = {};
  const timer = setTimeout(
    () => finish({ ok: false, error: `timed out after ${opts.timeoutSeconds}s`, ...progress, ...authReport(provider) }),
    opts.timeoutSeconds * 1000,
  );
  try {
    await run(provider, progress, opts);
    finish({ ok: true, ...progress, ...authReport(provider) });
  } catch (err) {
    finish({ ok: false, error: describe(err), ...progress, ...authReport(provider) });
  } finally {
    clearTimeout(timer);
  }
}

main();
