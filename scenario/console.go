package scenario

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/qmp/journal"
)

// Console patterns. The kernel's own wording, from lib/bug.c,
// arch/x86/mm/fault.c, kernel/panic.c and kernel/hung_task.c.
var (
	crashPattern = regexp.MustCompile(`(Kernel panic - not syncing|kernel BUG at|BUG: |Oops: |general protection fault|watchdog: BUG: soft lockup)`)
	warnPattern  = regexp.MustCompile(`WARNING: CPU: \d+ PID: \d+ at `)
	hungPattern  = regexp.MustCompile(`INFO: task (.+):(\d+) blocked for more than (\d+) seconds`)
	// The end of an oops/WARN report.
	endTrace = regexp.MustCompile(`---\[ end (trace|Kernel panic)`)
)

// scanConsole finds the first crash, every WARN and the pids named in
// hung-task reports in the console lines.
func scanConsole(lines []journal.Entry[string]) (crash *ConsoleHit, warns []ConsoleHit, hung map[int]time.Time) {
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
