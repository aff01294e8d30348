package trial

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/yank-dev/yank/scenario"
)

// TestTriggerScriptPassesArgvUntouched runs the command trigger's script
// under the host's /bin/sh (the guest's is busybox ash, the same POSIX
// rules) with an argv that a shell would mangle if it were pasted in:
// the argv arrives as given, T0 names the pid that exec'd it, and T1 its
// exit status.
func TestTriggerScriptPassesArgvUntouched(t *testing.T) {
	dir := t.TempDir()
	kmsg := filepath.Join(dir, "kmsg")
	if err := os.WriteFile(filepath.Join(dir, "sampler.ready"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "argv")
	argv := []string{"sh", "-c", `printf '%s\n' "$$" "$@" > "$0"`, out, "a b", "$(id)", "'q'", "*", `"x"`}
	script := triggerScript(scenario.TriggerCommand, "", dir, kmsg, lookVars("0000:99:00.0", "nosuchdisk", dir, []string{"del_gendisk"}))
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "yank-trigger"}, argv...)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if want := argv[4:]; strings.Join(lines[1:], "|") != strings.Join(want, "|") {
		t.Fatalf("argv arrived as %q, want %q", lines[1:], want)
	}
	log, _ := os.ReadFile(kmsg)
	pid, _ := os.ReadFile(filepath.Join(dir, "trigger.pid"))
	// Look 0 comes first: the state just before T0, the trigger not yet
	// started, the (made-up) device gone.
	look0, rest, _ := strings.Cut(string(log), "\n")
	if !strings.HasPrefix(look0, "<7>YANK-S n=0 trig=none in=- wchan=- dirty=") || !strings.HasSuffix(look0, " inflight=- dev=gone") {
		t.Fatalf("first kmsg line %q, want look 0 (YANK-S n=0 trig=none ... dev=gone)", look0)
	}
	marker, _, _ := strings.Cut(rest, "\n")
	if p, ok := scenario.MarkerPID(marker); !ok || strconv.Itoa(p) != lines[0] || strings.TrimSpace(string(pid)) != lines[0] {
		t.Fatalf("T0 %q and trigger.pid %q do not name the pid that ran the argv (%s)", marker, pid, lines[0])
	}
	if !strings.Contains(marker, "trigger=command") || !strings.Contains(string(log), "YANK-T1 rc=0") {
		t.Fatalf("kmsg: %q", log)
	}
}
