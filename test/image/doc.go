// Package image holds the tests of the container image definition (the
// Dockerfile and .dockerignore at the repository root). There is no Docker
// engine in the test environment, so they replay the Dockerfile's build stage
// with the local Go toolchain on a copy of the build context, and check the
// final stage by parsing it.
package image
