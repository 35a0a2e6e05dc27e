// Package ts embeds the Node project of the TypeScript SDK client that the
// end-to-end tests run (client.mjs, package.json and its lockfile, which pin
// both SDK lines), so that
// test/e2e/tsclient can install and run it from any working directory and
// key its install cache by exactly the lockfile it was built with.
package ts

import "embed"

// Project holds package.json, package-lock.json and client.mjs.
//
//go:embed package.json package-lock.json client.mjs
var Project embed.FS
