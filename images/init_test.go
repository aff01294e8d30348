package images

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
)

// The init script is shell the host cannot type-check: keep it in step
// with the Go names, and (TestInitScriptParses) parse it with the busybox
// that will run it.
func TestInitScriptMentionsGoNames(t *testing.T) {
	for _, s := range []string{AgentPortName, ReadyMarker, AgentMissingMarker, modulesList, "YANK-INIT kernel=", "yank.debug=1"} {
		if !bytes.Contains(initScript, []byte(s)) {
			t.Errorf("init.sh does not mention %q", s)
		}
	}
}

func TestInitScriptParses(t *testing.T) {
	e2e.Require(t)
	needHost(t, "/bin/busybox")
	cmd := exec.Command("/bin/busybox", "sh", "-n")
	cmd.Stdin = bytes.NewReader(initScript)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("busybox sh -n init.sh: %v\n%s", err, out)
	}
}
