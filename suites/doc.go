// Package suites holds yank's Ginkgo v2 suites, the product's main test
// surface.
package suites
