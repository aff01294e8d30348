package main

import (
	"context"
	"io"

	"github.com/yank-dev/yank/suites/report"
)

// reportCmd is `yank report`: the HTML matrix report (see suites/report).
func reportCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return report.Command(args, stdout, stderr)
}
