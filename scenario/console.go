package scenario

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/journal"
)

// Console patterns. The kernel's own wording, from lib/bug.c,
// arch/x86/mm/fault.c, arch/x86/kernel/traps.c, kernel/panic.c,
// kernel/watchdog.c, kernel/rcu/tree_stall.h and kernel/hung_task.c, checked
// against real consoles in testdata/console (corpus_test.go).
//
// A crash is anything after which the kernel itself says it is broken:
// BUG()/oops ("kernel BUG at", "BUG: kernel NULL pointer dereference",
// "Oops: ", "general protection fault"), a soft lockup ("watchdog: BUG:
// soft lockup - CPU#N stuck for Ns!", matched by "BUG: "), a panic, and an
// RCU CPU stall ("rcu: INFO: rcu_sched self-detected stall on CPU",
// "... detected stalls on CPUs/tasks:", "... detected expedited stalls"):
// a CPU that does not pass through a quiescent state for
// rcu_cpu_stall_timeout (21 s) is spinning with preemption or interrupts
// off, the same class of bug as a soft lockup, and no D-state probe would
// ever see it. A hung task (khungtaskd's "INFO: task ... blocked for more
// than") is not a crash: it is HANG's evidence. A WARN is recorded, not a
// crash. "Kernel BUG at" (capital K) is BUG() on kernels built without
// CONFIG_DEBUG_BUGVERBOSE.
var (
	crashPattern = regexp.MustCompile(`(Kernel panic - not syncing|[Kk]ernel BUG at|BUG: |Oops: |general protection fault|watchdog: BUG: soft lockup|INFO: rcu_\w+ (self-)?detected (expedited )?stall)`)
	warnPattern  = regexp.MustCompile(`WARNING: CPU: \d+ PID: \d+ at `)
	hungPattern  = regexp.MustCompile(`INFO: task (.+):(\d+) blocked for more than (\d+) seconds`)
	// The end of an oops/WARN report.
	endTrace = regexp.MustCompile(`---\[ end (trace|Kernel panic)`)
)

// ScanConsole finds the first crash, every WARN and the pids named in
// hung-task reports in the console lines.
func ScanConsole(lines []journal.Entry[string]) (crash *ConsoleHit, warns []ConsoleHit, hung map[int]time.Time) {
	hung = map[int]time.Time{}
	for i, e := range lines {
		text := stripPrintkTime(e.Item)
		switch {
		case crash == nil && crashPattern.MatchString(text):
			h := hitAt(lines, i, "crash")
			crash = &h
		case warnPattern.MatchString(text):
			warns = append(warns, hitAt(lines, i, "warn"))
		default:
			if m := hungPattern.FindStringSubmatch(text); m != nil {
				if pid, err := strconv.Atoi(m[2]); err == nil {
					if _, seen := hung[pid]; !seen {
						hung[pid] = e.Time
					}
				}
			}
		}
	}
	return crash, warns, hung
}

// hitAt captures the report starting at line i, up to its end marker or 60
// lines.
func hitAt(lines []journal.Entry[string], i int, kind string) ConsoleHit {
	var b strings.Builder
	for j := i; j < len(lines) && j < i+60; j++ {
		b.WriteString(lines[j].Item)
		b.WriteByte('\n')
		if j > i && endTrace.MatchString(lines[j].Item) {
			break
		}
	}
	return ConsoleHit{Kind: kind, Line: stripPrintkTime(lines[i].Item), Time: lines[i].Time, Text: b.String()}
}

var printkTime = regexp.MustCompile(`^\[\s*\d+\.\d+\]\s?`)

func stripPrintkTime(s string) string { return printkTime.ReplaceAllString(s, "") }
