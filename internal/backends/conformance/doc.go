// Package conformance holds the one test suite that every backend must pass, against the provider
// simulations of internal/backends/fake: the credential check and config schema
// (conformance_test.go), and for every backend that can provision machines (compute_test.go) the
// lifecycle (create, poll UpdateProvisioningData until the machine has an address, terminate twice,
// nothing left alive), a machine taken away (ProvisioningError, terminate still succeeds), the error
// mapping (no capacity → NoCapacityError, bad credentials → CredentialsError, 5xx, throttling and
// timeouts → plain errors) and live offer sources (non-empty, cheapest first, some available). It
// has no code of its own.
package conformance
