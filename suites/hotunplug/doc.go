// Package hotunplug is yank's Ginkgo v2 suite: one spec per kernel x
// scenario x offset x repeat, each booting a guest, racing a removal
// against the scenario's trigger and asserting the kernel's expectation
// (suites/expect). The specs live in the _test.go files; see README.md
// ("Suites") for the flags.
package hotunplug
