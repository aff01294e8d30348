package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/internal/kcidbcheck"
)

// TestCommand runs `yank report` on a Ginkgo JSON report and a JUnit
// report made from it: the page is written, and the summary counts
// MISSED apart and prints every cell's rate and the failed rate rule.
func TestCommand(t *testing.T) {
	dir := t.TempDir()
	js := ginkgoReport(t, matrixRecords(t, filepath.Join(dir, "artifacts")))
	out := filepath.Join(dir, "out.html")
	var stdout, stderr bytes.Buffer
	if err := Command([]string{"-o", out, js}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Fatalf("no page: %v", err)
	}
	got := stdout.String()
	for _, want := range []string{
		"38 trials (12 HANG, 20 PASS, 4 MISSED, 1 INFRA-ERROR, 1 no verdict), 4 unexpected, 4 not judged, 1 cell(s) below their rate rule",
		"hang rates (hung / tested, 95 % Wilson interval; MISSED apart):",
		"  stock unbind-race @4s: nothing tested, 2 missed\n",
		"  stock surprise-io @2s: met: 2/3 hung (67 %, 95 % CI 21-94 %), 1 missed: at least 50 %",
		"  rfc-v3 surprise-io @2s: problem: 1/3 hung (33 %, 95 % CI 6-79 %): below the rate rule's 50 %",
		"surprise-io    MISSED",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

// The suites' results as KCIDB: `yank report -kcidb` on their Ginkgo JSON
// report writes a file kcidb-io's own validator accepts, a no-verdict spec
// included (ERROR).
func TestCommandKCIDB(t *testing.T) {
	e2e.Require(t)
	dir := t.TempDir()
	js := ginkgoReport(t, matrixRecords(t, filepath.Join(dir, "artifacts")))
	file := filepath.Join(dir, "kcidb.json")
	var stdout, stderr bytes.Buffer
	if err := Command([]string{"-o", filepath.Join(dir, "out.html"), "-kcidb", file, "-kcidb-origin", "yank_suites", js}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if err := kcidbcheck.Validate(file); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(file)
	if n := strings.Count(string(b), `"build_id"`); n != 38 {
		t.Errorf("%d tests in the KCIDB file, want the report's 38 trials", n)
	}
}
