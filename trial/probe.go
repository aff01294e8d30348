package trial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/scenario"
)

// probeScript prints the state the verdict needs in one exec
// (scenario.ParseProbe reads it). It must not touch anything that can
// block on the stuck device: sysfs attributes of the disk and /proc only.
// `grep -l` over /proc/*/status finds D-state tasks in one process
// (forking per task is slow under TCG). The disk's stat is read once into
// a variable: a disk going away between a test and the read would
// otherwise print a bare "stat" line (seen on graceful-io).
func probeScript(bdf, disk string) string {
	return fmt.Sprintf(`B=%s; D=%s
if [ -e /sys/bus/pci/devices/$B ]; then echo dev present; else echo dev gone; fi
P=$(cat /run/yank/trigger.pid 2>/dev/null)
if [ -z "$P" ]; then echo trig none
else s=$(grep '^State:' /proc/$P/status 2>/dev/null | cut -c8)
  case "$s" in ""|Z|X) echo trig exited;; *) echo trig running;; esac; fi
s=$(cat /sys/block/$D/stat 2>/dev/null); echo stat ${s:-none}
read up idle < /proc/uptime; echo up $up
for f in $(grep -l '^State:.D' /proc/[0-9]*/status 2>/dev/null); do
  p=${f#/proc/}; p=${p%%/status}; c=0
  { while read k v; do case $k in voluntary_ctxt_switches:|nonvoluntary_ctxt_switches:) c=$((c+v));; esac; done; } 2>/dev/null < $f
  echo task $p $c $(cat /proc/$p/wchan 2>/dev/null || echo -) $(cat /proc/$p/comm 2>/dev/null)
done
`, bdf, disk)
}

// probe looks at the guest once (bounded by ctx); the answer, or why
// there is none, is a scenario.Probe without the removal's state.
func probe(ctx context.Context, a *guestagent.Client, bdf, disk string) scenario.Probe {
	res, err := a.RunShell(ctx, probeScript(bdf, disk))
	p := scenario.Probe{Host: time.Now()}
	switch {
	case err != nil:
		p.Err = err.Error()
		p.Slow = errors.Is(err, guestagent.ErrNotExited)
	case res.ExitCode != 0:
		p.Err = fmt.Sprintf("probe script exited %d: %s", res.ExitCode, res.Stderr)
	default:
		st, err := scenario.ParseProbe(string(res.Stdout))
		if err != nil {
			p.Err, p.Unreadable = err.Error(), true
		} else {
			p.State = &st
		}
	}
	return p
}

// stackOf reads /proc/PID/stack (CONFIG_STACKTRACE; root only); on
// failure it returns why, never a placeholder frame.
func stackOf(ctx context.Context, a *guestagent.Client, pid int) ([]string, string) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b, err := a.ReadFile(sctx, fmt.Sprintf("/proc/%d/stack", pid))
	if err != nil {
		return nil, err.Error()
	}
	var frames []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// "[<0>] del_gendisk+0x82/0x2e0": keep the symbol.
		if i := strings.Index(l, "] "); i >= 0 {
			l = l[i+2:]
		}
		if l != "" {
			frames = append(frames, l)
		}
	}
	if len(frames) == 0 {
		return nil, "empty /proc/PID/stack (the kernel lacks CONFIG_STACKTRACE?)"
	}
	return frames, ""
}
