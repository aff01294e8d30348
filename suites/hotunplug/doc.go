// Package hotunplug is yank's Ginkgo v2 suite: one spec per kernel x
// scenario x offset x repeat, each booting a guest, racing a removal
// against the scenario's trigger and judging the verdict against the
// kernel's expectation (suites/expect): a problem fails the spec, a trial
// that tested nothing (MISSED) or that no rule covers is skipped with the
// reason, and after the suite a ReportAfterSuite judges each cell's hang
// rate against its rate rule. The specs live in the _test.go files; see
// docs/suites.md for the flags.
package hotunplug
