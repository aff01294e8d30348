// Package e2e is the gate between yank's two test lanes: unit tests need
// nothing but Go and run everywhere; e2e tests boot real QEMU guests, talk
// to a real qemu-guest-agent or libvirtd, or build real kernels, and are
// skipped under `go test -short` (`make unit`). `make test` runs both.
package e2e

import "testing"

// Require skips tb under -short: call it first in every test or benchmark
// that starts QEMU, qemu-ga or libvirtd, or builds a kernel or image.
func Require(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("e2e (real QEMU, qemu-ga, libvirtd or kernel build): skipped under -short; make test runs it")
	}
}
