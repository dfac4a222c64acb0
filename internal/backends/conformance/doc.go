// Package conformance holds the one test suite that every backend's credential check and config
// schema must pass; see conformance_test.go. It has no code of its own.
package conformance
