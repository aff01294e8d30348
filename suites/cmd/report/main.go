// Command report is `yank report` without building yank:
// go run ./suites/cmd/report -o report.html report.json
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/yank-dev/yank/suites/report"
)

func main() {
	err := report.Command(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}
