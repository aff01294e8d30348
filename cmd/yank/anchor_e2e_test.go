package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/scenario"
)

// TestAnchorErrorsNeedAKernel: the anchor's bad inputs that only a real
// kernel can show, each with its own clear result, none of them PASS or
// MISSED: a misspelt function fails the run before any boot and names the
// nearest functions; a bzImage with no System.map or vmlinux beside it
// fails before any boot and says how to give one; an anchor the guest
// never reaches is UNREACHED, with no cut made.
func TestAnchorErrorsNeedAKernel(t *testing.T) {
	e2e.Require(t)
	stock, err := kernels.Resolve(context.Background(), "stock", testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := runCmd(context.Background(), append(args, "-artifacts", t.TempDir()), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	// A bzImage alone in a directory.
	bare := filepath.Join(t.TempDir(), "bzImage")
	b, err := os.ReadFile(stock.BzImage)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bare, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-kernels", "stock", "-scenarios", "unbind-race", "-cut-at", "del_gendisc"},
			[]string{`no function "del_gendisc"`, "nearest: del_gendisk, "}},
		{[]string{"-kernels", "mine=" + bare, "-scenarios", "unbind-race"},
			[]string{"no System.map or vmlinux beside the bzImage", "-cut-at offset"}},
		{[]string{"-kernels", "stock", "-scenarios", "unbind-race", "-cut-at", "del_gendisk+0x100000"},
			[]string{"past the end of del_gendisk"}},
	} {
		out, err := run(tc.args...)
		if err == nil {
			t.Errorf("%v: no error:\n%s", tc.args, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %v lacks %q", tc.args, err, w)
			}
		}
		if strings.Contains(out, "trial ") {
			t.Errorf("%v: a trial ran before the error:\n%s", tc.args, out)
		}
	}
	// The bare bzImage still runs timed cuts.
	rows := runMatrixCmd(t, "-kernels", "mine="+bare, "-scenarios", "surprise-idle")
	if len(rows) != 1 || rows[0].Verdict.Outcome != scenario.Pass {
		t.Errorf("a bzImage without symbols, timed control: %+v", rows)
	}
	// emergency_sync runs only on SysRq-S: never after this trigger.
	rows = runMatrixCmd(t, "-kernels", "stock", "-scenarios", "unbind-race", "-cut-at", "emergency_sync", "-anchor-budget", "2s")
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	v := rows[0].Verdict
	if v.Outcome != scenario.Unreached || v.Anchor == nil || v.Anchor.Hits != 0 || v.Removal != nil || !strings.Contains(v.Reason, "never reached anchor emergency_sync") {
		t.Errorf("an anchor never hit: %s (%s), anchor %+v, removal %+v; want UNREACHED with no cut", v.Outcome, v.Reason, v.Anchor, v.Removal)
	}
}
