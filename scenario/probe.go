package scenario

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/guestagent"
)

// guestState is one look at the guest through the agent.
type guestState struct {
	DevicePresent bool
	Trigger       string        // "running", "exited" or "none"
	Completions   string        // read+write I/Os completed and in-flight, "" once the disk is gone
	Uptime        time.Duration // the guest's clock (/proc/uptime)
	DTasks        map[int]Task  // CtxtSwitches[1] holds the current count
}

// probeScript prints the state the verdict needs in one exec. It must not
// touch anything that can block on the stuck device: sysfs attributes of
// the disk and /proc only. `grep -l` over /proc/*/status finds D-state
// tasks in one process (forking per task is slow under TCG).
func probeScript(bdf, disk string) string {
	return fmt.Sprintf(`B=%s; D=%s
if [ -e /sys/bus/pci/devices/$B ]; then echo dev present; else echo dev gone; fi
P=$(cat /run/yank/trigger.pid 2>/dev/null)
if [ -z "$P" ]; then echo trig none
else s=$(grep '^State:' /proc/$P/status 2>/dev/null | cut -c8)
  case "$s" in ""|Z|X) echo trig exited;; *) echo trig running;; esac; fi
if [ -r /sys/block/$D/stat ]; then echo stat $(cat /sys/block/$D/stat); else echo stat none; fi
read up idle < /proc/uptime; echo up $up
for f in $(grep -l '^State:.D' /proc/[0-9]*/status 2>/dev/null); do
  p=${f#/proc/}; p=${p%%/status}; c=0
  { while read k v; do case $k in voluntary_ctxt_switches:|nonvoluntary_ctxt_switches:) c=$((c+v));; esac; done; } 2>/dev/null < $f
  echo task $p $c $(cat /proc/$p/wchan 2>/dev/null || echo -) $(cat /proc/$p/comm 2>/dev/null)
done
`, bdf, disk)
}

func probe(ctx context.Context, a *guestagent.Client, bdf, disk string) (guestState, error) {
	res, err := a.RunShell(ctx, probeScript(bdf, disk))
	if err != nil {
		return guestState{}, err
	}
	if res.ExitCode != 0 {
		return guestState{}, fmt.Errorf("probe script exited %d: %s", res.ExitCode, res.Stderr)
	}
	st, err := parseProbe(string(res.Stdout))
	if err != nil {
		return st, &badProbeError{err}
	}
	return st, nil
}

// badProbeError: the probe ran but its output cannot be read.
type badProbeError struct{ err error }

func (e *badProbeError) Error() string { return "unreadable guest probe: " + e.err.Error() }
func (e *badProbeError) Unwrap() error { return e.err }

func parseProbe(out string) (guestState, error) {
	st := guestState{DTasks: map[int]Task{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		seen[f[0]] = true
		switch f[0] {
		case "dev":
			st.DevicePresent = f[1] == "present"
		case "trig":
			st.Trigger = f[1]
		case "stat":
			if f[1] != "none" && len(f) >= 10 {
				// reads completed, writes completed, in flight: fields that
				// only move with real progress (io_ticks grows while stuck).
				st.Completions = f[1] + "/" + f[5] + "/" + f[9]
			}
		case "up":
			secs, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return st, fmt.Errorf("probe: bad uptime %q", f[1])
			}
			st.Uptime = time.Duration(secs * float64(time.Second))
		case "task":
			// task PID CTXT WCHAN COMM...
			if len(f) < 5 {
				continue
			}
			pid, err1 := strconv.Atoi(f[1])
			ctxt, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			t := Task{PID: pid, State: "D", WChan: f[3], Comm: strings.Join(f[4:], " ")}
			t.CtxtSwitches[1] = ctxt
			st.DTasks[pid] = t
		}
	}
	for _, k := range []string{"dev", "trig", "stat", "up"} {
		if !seen[k] {
			return st, fmt.Errorf("probe output lacks %q: %q", k, out)
		}
	}
	return st, nil
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
