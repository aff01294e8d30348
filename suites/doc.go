// Package suites holds yank's Ginkgo v2 suites, the product's main test
// surface:
//
//	hotunplug/  the suite: kernels x scenarios x offsets x repeats
//	expect/     expectations.json: which kernels hang where (data)
//	plan/       flags -> the list of trials (seeded order and jitter)
//	report/     Ginkgo JSON or verdict.json -> HTML heatmap report
//	internal/   the -yank.* flags; judge: spec endings and rate rules (Ginkgo side)
package suites
