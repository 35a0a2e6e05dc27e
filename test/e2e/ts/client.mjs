#!/usr/bin/env node
// A headless OAuth MCP client on the official TypeScript SDK, for mcpgate's
// end-to-end tests. It runs on either SDK line this project pins:
//
//   --sdk 1.32.2   @modelcontextprotocol/sdk     (1.x, one package)
//   --sdk 2.4.0    @modelcontextprotocol/client  (2.x, the split packages)
//
//   node client.mjs --url <mcp url> [--sdk 1.32.2] [--tool whoami] [--args '{}'] [--list-only]
//                   [--scope "..."] [--login-hint <user id or email>] [--timeout 60]
//                   [--client-metadata-url https://.../client.json]
//
// It connects to an MCP endpoint protected by OAuth and lets the SDK do what
// a real TypeScript MCP client does on a 401: read the protected resource
// metadata named in WWW-Authenticate, discover the authorization server,
// register dynamically, and start an authorization code flow with PKCE. The
// one thing a person would do in a browser, following the authorization URL
// and consenting, is done here with plain HTTP requests: the authorization
// servers this runs against (the Clerk emulator) consent on the user's behalf
// and redirect straight back with a code. --login-hint adds OpenID Connect's
// login_hint to that URL, naming the user who signs in.
//
// --client-metadata-url makes the client a client ID metadata document
// (CIMD, SEP-991) client: when the authorization server advertises
// client_id_metadata_document_supported, the SDK uses that URL as the
// client_id instead of registering; otherwise it still registers. Both SDK
// lines take only an https URL with a path. The document must list
// REDIRECT_URL (http://127.0.0.1:1/callback) among its redirect_uris.
//
// Then it lists the tools, calls one (unless --list-only), and prints
// exactly one JSON line on stdout:
//
//   {"ok":true,"sdk":"@modelcontextprotocol/client@2.4.0","tools":[...],"result":{...},
//    "authorizations":1,"registeredClientId":"...","resource":"...","authorizationServer":"..."}
//   {"ok":false,"error":"...","stage":"initialize","errorClass":"...","errorHttpStatus":403,
//    "errorCode":-32003,"errorMessage":"...", ...}   (exit code 1)
//
// "result" is the tool's CallToolResult as the server sent it (content,
// structuredContent, isError). On failure, "error" is the SDK's error as it
// reads (with its cause chain), "stage" the step that failed, and the
// error* fields what the SDK's error carried: its class, the HTTP status it
// attached, and the JSON-RPC error (from a protocol error, or from the
// response body the SDK kept in its HTTP error). Diagnostics go to stderr.
// Access tokens, refresh tokens, authorization codes and PKCE verifiers are
// never printed: they live only in memory, and every message that leaves the
// process is scrubbed of them.

import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

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

// The SDK lines this client drives, by major version. Each entry loads the
// line's classes and knows the few places where the two differ.
const SDK_LINES = {
  1: {
    pkg: '@modelcontextprotocol/sdk',
    async load() {
      const [{ Client }, { StreamableHTTPClientTransport, StreamableHTTPError }, { UnauthorizedError }, { McpError }] =
        await Promise.all([
          import('@modelcontextprotocol/sdk/client/index.js'),
          import('@modelcontextprotocol/sdk/client/streamableHttp.js'),
          import('@modelcontextprotocol/sdk/client/auth.js'),
          import('@modelcontextprotocol/sdk/types.js'),
        ]);
      return {
        Client,
        StreamableHTTPClientTransport,
        UnauthorizedError,
        // 1.x takes the code alone.
        finishAuth: (transport, callback) => transport.finishAuth(callback.get('code')),
        // StreamableHTTPError carries the HTTP status in .code (-1 when there
        // is none) and the response body only inside its message
        // ("Streamable HTTP error: Error POSTing to endpoint: <body>").
        // McpError carries the JSON-RPC code, and a message prefixed with
        // "MCP error <code>: ".
        errorDetail(err) {
          if (err instanceof StreamableHTTPError) {
            const httpStatus = err.code > 0 ? err.code : undefined;
            const marker = 'Error POSTing to endpoint: ';
            const at = err.message.indexOf(marker);
            return { httpStatus, rpc: at < 0 ? undefined : rpcErrorOf(err.message.slice(at + marker.length)) };
          }
          if (err instanceof McpError) {
            const prefix = `MCP error ${err.code}: `;
            const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
            return { rpc: { code: err.code, message } };
          }
          return {};
        },
      };
    },
  },
  2: {
    pkg: '@modelcontextprotocol/client',
    async load() {
      const { Client, StreamableHTTPClientTransport, UnauthorizedError, ProtocolError, SdkHttpError } = await import(
        '@modelcontextprotocol/client'
      );
      return {
        Client,
        StreamableHTTPClientTransport,
        UnauthorizedError,
        // 2.x prefers the callback's parameters: it reads code and iss from
        // them and checks iss (RFC 9207) before redeeming the code.
        finishAuth: (transport, callback) => transport.finishAuth(callback),
        // SdkHttpError carries the HTTP status in .status and, for a failed
        // POST, the response body in .data.text. ProtocolError carries the
        // JSON-RPC code and message as the server sent them.
        errorDetail(err) {
          if (err instanceof SdkHttpError) {
            const text = err.data?.text;
            return { httpStatus: err.status, rpc: typeof text === 'string' ? rpcErrorOf(text) : undefined };
          }
          if (err instanceof ProtocolError) return { rpc: { code: err.code, message: err.message } };
          return {};
        },
      };
    },
  },
};

// A JSON-RPC error response in an HTTP body, or undefined.
function rpcErrorOf(body) {
  try {
    const msg = JSON.parse(body);
    if (msg && msg.jsonrpc === '2.0' && msg.error && Number.isInteger(msg.error.code)) {
      return { code: msg.error.code, message: String(msg.error.message ?? '') };
    }
  } catch {
    // Not JSON: the SDK's message says what there is to say.
  }
  return undefined;
}

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
 * authorization request when the SDK asks for a redirect. Both SDK lines
 * call it the same way (2.x adds an issuer context argument to the
 * credential methods, which a provider holding one set of credentials may
 * ignore).
 */
class HeadlessOAuthProvider {
  constructor({ scope, loginHint, clientMetadataUrl }) {
    this._scope = scope;
    // Read by the SDK as a plain property: present only when asked for, so
    // that without it the provider is exactly the DCR one.
    if (clientMetadataUrl) this.clientMetadataUrl = clientMetadataUrl;
    this._loginHint = loginHint;
    this._clientInformation = undefined;
    this._tokens = undefined;
    this._codeVerifier = undefined;
    this._discoveryState = undefined;
    this._state = undefined;
    this._pendingCallback = undefined;
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
   * points back at REDIRECT_URL, then keep its parameters for finishAuth.
   * The SDK then fails the pending MCP request with UnauthorizedError,
   * which is the caller's cue to finish the flow and retry.
   */
  async redirectToAuthorization(authorizationUrl) {
    this.authorizations++;
    let next = new URL(authorizationUrl);
    // What a client that knows who is signing in sends (OpenID Connect Core
    // 3.1.2.1); the SDK itself has no option for it.
    if (this._loginHint) next.searchParams.set('login_hint', this._loginHint);
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
        this._pendingCallback = this._readAuthorizationResponse(target.searchParams);
        return;
      }
      next = target;
    }
    throw new Error(`authorization request: more than ${MAX_AUTHORIZE_HOPS} redirects without coming back to the client`);
  }

  // RFC 6749 4.1.2: a code (and our state), or an error with a description.
  // Returns the callback's parameters, which carry the code (and iss, when
  // the authorization server sends one).
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
    return new URLSearchParams(params);
  }

  // Hands out the callback parameters of the last authorization, once.
  takeCallback() {
    const callback = this._pendingCallback;
    this._pendingCallback = undefined;
    return callback;
  }
}

function isRedirectUrl(u) {
  const want = new URL(REDIRECT_URL);
  return u.protocol === want.protocol && u.host === want.host && u.pathname === want.pathname;
}

/**
 * Runs op; when it fails because the SDK sent us off to authorize, exchanges
 * the code and runs op again. This is how both SDK lines expect to be
 * driven: the request that met the 401 (or a 403 asking for more scopes) is
 * rejected with UnauthorizedError once redirectToAuthorization has returned,
 * and transport.finishAuth "will exchange the authorization code for an
 * access token, enabling the next connection attempt to successfully auth"
 * (its doc comment in either line's StreamableHTTPClientTransport).
 */
async function withAuthorization(sdk, provider, getTransport, op) {
  for (let round = 0; ; round++) {
    try {
      return await op();
    } catch (err) {
      const callback = err instanceof sdk.UnauthorizedError ? provider.takeCallback() : undefined;
      if (callback === undefined || round >= MAX_AUTH_ROUNDS) throw err;
      await sdk.finishAuth(getTransport(), callback);
    }
  }
}

// Connects, lists the tools and calls one, filling in progress as it goes so
// that a failure still reports how far it got.
async function run(sdk, provider, progress, { url, tool, args, listOnly }) {
  let transport;
  let client;

  // A failed initialize closes the client and its transport, and a
  // transport cannot be started twice, so each connection attempt gets new
  // ones. The provider, and with it the tokens, carries over.
  progress.stage = 'initialize';
  await withAuthorization(sdk, provider, () => transport, async () => {
    transport = new sdk.StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    client = new sdk.Client({ name: 'mcpgate-e2e-ts', version: '0.0.0' });
    await client.connect(transport);
  });

  try {
    // Later requests may still need authorization (a tool scope: step-up);
    // they reuse the live connection, so only the request is repeated.
    progress.stage = 'tools/list';
    const listed = await withAuthorization(sdk, provider, () => transport, () => client.listTools());
    progress.tools = listed.tools.map((t) => t.name);
    if (listOnly) return;
    progress.stage = 'tools/call';
    const result = await withAuthorization(sdk, provider, () => transport, () => client.callTool({ name: tool, arguments: args }));
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
      sdk: { type: 'string', default: '1.32.2' },
      tool: { type: 'string', default: 'whoami' },
      args: { type: 'string', default: '{}' },
      'list-only': { type: 'boolean', default: false },
      scope: { type: 'string', default: '' },
      'login-hint': { type: 'string', default: '' },
      timeout: { type: 'string', default: '60' },
      'client-metadata-url': { type: 'string', default: '' },
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
  return {
    url: url.href,
    sdkVersion: values.sdk,
    tool: values.tool,
    args,
    listOnly: values['list-only'],
    scope: values.scope || undefined,
    loginHint: values['login-hint'] || undefined,
    clientMetadataUrl: values['client-metadata-url'] || undefined,
    timeoutSeconds,
  };
}

// Loads the SDK line of version, after checking that the installed package
// is exactly that version: a test that asks for 2.4.0 must not silently run
// whatever the lockfile happens to pin.
async function loadSDK(version) {
  const line = SDK_LINES[Number.parseInt(version, 10)];
  if (!line) throw new Error(`--sdk ${version}: no SDK line for this major version (have ${Object.keys(SDK_LINES).join(', ')})`);
  const here = dirname(fileURLToPath(import.meta.url));
  let installed;
  try {
    installed = JSON.parse(await readFile(join(here, 'node_modules', line.pkg, 'package.json'), 'utf8')).version;
  } catch (err) {
    throw new Error(`--sdk ${version}: ${line.pkg} is not installed beside this script: ${err.message}`);
  }
  if (installed !== version) throw new Error(`--sdk ${version}: the installed ${line.pkg} is ${installed}`);
  return { name: `${line.pkg}@${installed}`, ...(await line.load()) };
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

// The failure fields of the report: the SDK's message, and what its error
// carried in a form a test can compare.
function errorReport(sdk, err) {
  const report = { error: describe(err) };
  if (!(err instanceof Error)) return report;
  report.errorClass = err.name && err.name !== 'Error' ? err.name : err.constructor?.name;
  const detail = sdk?.errorDetail(err) ?? {};
  if (detail.httpStatus) report.errorHttpStatus = detail.httpStatus;
  if (detail.rpc) {
    report.errorCode = detail.rpc.code;
    report.errorMessage = detail.rpc.message;
  }
  return report;
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
  let sdk;
  try {
    opts = parseCommandLine(process.argv.slice(2));
    sdk = await loadSDK(opts.sdkVersion);
  } catch (err) {
    finish({ ok: false, error: `usage: ${describe(err)}`, stage: 'start' });
    return;
  }
  const provider = new HeadlessOAuthProvider({
    scope: opts.scope,
    loginHint: opts.loginHint,
    clientMetadataUrl: opts.clientMetadataUrl,
  });
  const progress = { sdk: sdk.name };
  const timer = setTimeout(
    () => finish({ ok: false, error: `timed out after ${opts.timeoutSeconds}s`, ...progress, ...authReport(provider) }),
    opts.timeoutSeconds * 1000,
  );
  try {
    await run(sdk, provider, progress, opts);
    delete progress.stage;
    finish({ ok: true, ...progress, ...authReport(provider) });
  } catch (err) {
    finish({ ok: false, ...errorReport(sdk, err), ...progress, ...authReport(provider) });
  } finally {
    clearTimeout(timer);
  }
}

main();
