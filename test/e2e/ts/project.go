// Package ts embeds the Node project of the TypeScript SDK client that the
// end-to-end tests run (client.mjs, package.json and its lockfile, which pin
// both SDK lines and mcp-remote, and browser.mjs, the stand-in browser that
// drives mcp-remote's OAuth flow), so that
// test/e2e/tsclient can install and run it from any working directory and
// key its install cache by exactly the lockfile it was built with.
package ts

import "embed"

// Project holds package.json, package-lock.json, client.mjs and browser.mjs.
//
//go:embed package.json package-lock.json client.mjs browser.mjs
var Project embed.FS
