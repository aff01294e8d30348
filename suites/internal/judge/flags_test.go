package judge_test

// The suite's flags, so `go test ./suites/... -args -yank.kernels=...`
// (or -ginkgo.label-filter=...) does not fail this package.
import _ "github.com/yank-dev/yank/suites/internal/flags"
