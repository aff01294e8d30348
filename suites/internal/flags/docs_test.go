package flags

import (
	"flag"
	"testing"

	"github.com/yank-dev/yank/internal/doccheck"
)

// Every -yank.NAME the docs tell a reader to pass is a flag the suites
// define (yank's own commands are checked in cmd/yank).
func TestDocsSuiteFlags(t *testing.T) {
	pages, err := doccheck.Pages("../../..")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pages {
		for _, u := range p.SuiteFlags {
			n++
			if flag.Lookup(u.Name) == nil {
				t.Errorf("%s: -%s is not a suite flag (see suites/internal/flags/flags.go)", u.Ref, u.Name)
			}
		}
	}
	if n == 0 {
		t.Error("the docs name no -yank.* flag: the suites page should")
	}
	// The check can fail: a misspelt one is caught.
	bad := doccheck.Parse("bad.md", "run `go test ./suites/hotunplug -args -yank.cut-att=del_gendisk`\n")
	if len(bad.SuiteFlags) != 1 || flag.Lookup(bad.SuiteFlags[0].Name) != nil {
		t.Errorf("a misspelt -yank.cut-att was not caught: %+v", bad.SuiteFlags)
	}
}
