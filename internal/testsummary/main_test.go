package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// A recorded go test -json stream (trimmed): one passing package, one with
// a failing test; plain go test's lines come out, the failure's output
// with them, and the slowest test first.
const stream = `{"Action":"run","Package":"p/a","Test":"TestFast"}
{"Action":"output","Package":"p/a","Test":"TestFast","Output":"=== RUN   TestFast\n"}
{"Action":"pass","Package":"p/a","Test":"TestFast","Elapsed":0.5}
{"Action":"output","Package":"p/a","Output":"ok  \tp/a\t0.6s\n"}
{"Action":"pass","Package":"p/a","Elapsed":0.6}
{"Action":"run","Package":"p/b","Test":"TestSlow"}
{"Action":"output","Package":"p/b","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Action":"output","Package":"p/b","Test":"TestSlow","Output":"    x_test.go:9: boom\n"}
{"Action":"output","Package":"p/b","Test":"TestSlow","Output":"--- FAIL: TestSlow (12.00s)\n"}
{"Action":"fail","Package":"p/b","Test":"TestSlow","Elapsed":12}
{"Action":"output","Package":"p/b","Output":"FAIL\tp/b\t12.1s\n"}
{"Action":"fail","Package":"p/b","Elapsed":12.1}
# p/c [build failed]
`

func TestSummarize(t *testing.T) {
	var out bytes.Buffer
	failed, pkgs, tests := summarize(strings.NewReader(stream), &out, io.Discard)
	if !failed || len(pkgs) != 2 || len(tests) != 2 {
		t.Fatalf("failed=%v pkgs=%v tests=%v", failed, pkgs, tests)
	}
	got := out.String()
	for _, want := range []string{"ok  \tp/a\t0.6s\n", "x_test.go:9: boom", "--- FAIL: TestSlow", "FAIL\tp/b\t12.1s\n", "# p/c [build failed]"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "=== RUN   TestFast") {
		t.Errorf("a passing test's output was printed:\n%s", got)
	}
	out.Reset()
	report(&out, pkgs, tests, 1)
	if !strings.Contains(out.String(), "slowest 1 tests:\n      12s  p/b TestSlow (FAIL)\n") {
		t.Errorf("report:\n%s", out.String())
	}
}
