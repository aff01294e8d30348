package kernels

import (
	"io/fs"
	"os/exec"
	"syscall"
	"time"
)

// killGroupOnCancel runs cmd in its own process group and, when the
// command's context ends, kills the whole group: make's children (cc1,
// ld, objtool) would otherwise survive as orphans.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Grandchildren may hold the output pipes open; do not wait forever.
	cmd.WaitDelay = 5 * time.Second
}

func linkCount(st fs.FileInfo) (uint64, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(s.Nlink), true
}
