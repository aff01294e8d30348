package trial

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine/machinetest"
	"github.com/yank-dev/yank/scenario"
)

// The guest setup caps the disk's largest request at what the throttle's
// drain assumes (a graceful removal's hang horizon counts on it) and
// leaves a lower limit alone. Debian's kernel defaults to the cap
// already, so the test raises the limit first: without the cap it stays
// raised and the test fails.
func TestSetupCapsTheLargestRequest(t *testing.T) {
	e2e.Require(t)
	ctx := machinetest.Context(t, 3*time.Minute)
	m := machinetest.StartT(t, machinetest.DebianGuest(t, "setup-cap"), machinetest.WithContext(ctx))
	path, err := m.QMP.FindPCI(ctx, "disk0")
	if err != nil {
		t.Fatal(err)
	}
	bdf := "0000:" + path.Device.Address().String()
	disks := machinetest.BlockDevices(t, ctx, m, bdf)
	if len(disks) != 1 {
		t.Fatalf("block devices under %s: %v, want one", bdf, disks)
	}
	q := "/sys/block/" + disks[0] + "/queue/"
	shell := func(script string) string {
		t.Helper()
		res, err := m.Agent.RunShell(ctx, script)
		if err != nil || !res.Success() {
			t.Fatalf("guest: %s: %v %+v", script, err, res)
		}
		return strings.TrimSpace(string(res.Stdout))
	}
	hw, err := strconv.Atoi(shell("cat " + q + "max_hw_sectors_kb"))
	if err != nil {
		t.Fatal(err)
	}
	capKB := scenario.MaxRequestBytes / 1024
	if hw <= capKB {
		t.Fatalf("the disk's max_hw_sectors_kb is %d: the test needs more than %d to raise the limit above the cap", hw, capKB)
	}
	r := &runner{p: scenario.Params{}.WithDefaults()}
	for _, tc := range []struct{ before, want int }{{min(hw, 4*capKB), capKB}, {capKB / 2, capKB / 2}} {
		shell("echo " + strconv.Itoa(tc.before) + " > " + q + "max_sectors_kb")
		if out := shell(r.setupScript(bdf)); out != disks[0] {
			t.Fatalf("setup printed %q, want the disk's name %s", out, disks[0])
		}
		if got := shell("cat " + q + "max_sectors_kb"); got != strconv.Itoa(tc.want) {
			t.Errorf("max_sectors_kb %d before the setup: %s after, want %d", tc.before, got, tc.want)
		}
	}
}
