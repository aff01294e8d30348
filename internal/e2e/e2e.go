// Package e2e is the gate between yank's two test lanes: unit tests need
// nothing but Go and run everywhere; e2e tests boot real QEMU guests, talk
// to a real qemu-guest-agent or libvirtd, or build real kernels, and are
// skipped under `go test -short` (`make unit`). `make test` runs both.
package e2e

import (
	"slices"
	"testing"

	"github.com/yank-dev/yank/scenario"
)

// Require skips tb under -short: call it first in every test or benchmark
// that starts QEMU, qemu-ga or libvirtd, or builds a kernel or image.
func Require(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("e2e (real QEMU, qemu-ga, libvirtd or kernel build): skipped under -short; make test runs it")
	}
}

// StaleLookRuns bounds AgainOnStaleLook's runs.
const StaleLookRuns = 3

// AgainOnStaleLook runs run (one trial, or a command's matrix) again
// while any verdict it gives lost its window proof only because the
// guest sampler's last look was too old at the cut
// (scenario.WindowEvidence.StaleLook): a guest starved by the package
// make test runs beside this one tested nothing about its window. At most
// StaleLookRuns runs; the last one's result is returned, for the test to
// judge as it is.
func AgainOnStaleLook[T any](tb testing.TB, run func() T, verdicts func(T) []scenario.Verdict) T {
	tb.Helper()
	for i := 1; ; i++ {
		res := run()
		stale := slices.IndexFunc(verdicts(res), func(v scenario.Verdict) bool { return v.Window.StaleLook() })
		if stale < 0 || i == StaleLookRuns {
			return res
		}
		v := verdicts(res)[stale]
		tb.Logf("run %d: %s on %s lost its window proof to a stale sampler look (%s); again", i, v.Scenario, v.Kernel, v.Window.Reason)
	}
}
