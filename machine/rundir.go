package machine

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// RunRoot is where runtime dirs live: $YANK_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/yank, else <tmp>/yank-<uid>. It is created 0700.
func RunRoot() (string, error) {
	root := os.Getenv("YANK_RUNTIME_DIR")
	if root == "" {
		if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
			root = filepath.Join(x, "yank")
		} else {
			root = filepath.Join(os.TempDir(), "yank-"+strconv.Itoa(os.Getuid()))
		}
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("creating runtime root %s: %w", root, err)
	}
	// MkdirAll leaves an existing dir's mode alone: refuse a shared one.
	st, err := os.Stat(root)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(root, 0o700); err != nil {
			return "", fmt.Errorf("runtime root %s is not private (%v): %w", root, st.Mode().Perm(), err)
		}
	}
	return root, nil
}

// newRunDir makes a private dir "<pid>-<name>-*" under the runtime root. The
// owning pid in the name lets ReapStale find dirs of dead yank processes.
func newRunDir(name string) (string, error) {
	root, err := RunRoot()
	if err != nil {
		return "", err
	}
	ReapStale(root)
	// Socket paths must stay under 108 bytes: keep the name short.
	if len(name) > 16 {
		name = name[:16]
	}
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, name)
	dir, err := os.MkdirTemp(root, strconv.Itoa(os.Getpid())+"-"+name+"-")
	if err != nil {
		return "", fmt.Errorf("creating runtime dir: %w", err)
	}
	return dir, os.Chmod(dir, 0o700)
}

// ReapStale removes runtime dirs whose owning process is gone (a yank
// process killed before its janitor could run) and kills any QEMU still
// recorded in them. It is best effort and runs before every start.
func ReapStale(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, _, ok := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || processAlive(pid) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if b, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
			if qpid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isQEMU(qpid) {
				syscall.Kill(qpid, syscall.SIGKILL)
			}
		}
		os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func isQEMU(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix(string(comm), "qemu-system")
}

// startJanitor runs a tiny shell that waits for this process to die (its
// stdin pipe closes) and then kills the process group it was last told of
// (killGroupOnExit; the local QEMU) and removes the runtime dir. It covers
// the exits Go cannot clean up after: SIGKILL, a test binary's timeout
// panic, os.Exit. It runs in its own process group so a terminal's Ctrl-C
// does not kill it before it can act. A libvirt domain is libvirtd's to
// destroy (autodestroy): only the dir is the janitor's there.
func (m *Machine) startJanitor() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	const script = `while read -r g; do pg=$g; done; [ -n "$pg" ] && kill -KILL -- "-$pg" 2>/dev/null; rm -rf -- "$1"`
	j := exec.Command("/bin/sh", "-c", script, "yank-janitor", m.Paths.Dir)
	j.Stdin = r
	j.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := j.Start(); err != nil {
		w.Close()
		return fmt.Errorf("starting cleanup janitor: %w", err)
	}
	m.janitor, m.janitorPipe = j, w
	return nil
}

// killGroupOnExit tells the janitor to kill process group pgid too.
func (m *Machine) killGroupOnExit(pgid int) error {
	if _, err := fmt.Fprintf(m.janitorPipe, "%d\n", pgid); err != nil {
		return fmt.Errorf("cleanup janitor: %w", err)
	}
	return nil
}

// stopJanitor ends the janitor without letting it act: our cleanup is done.
func (m *Machine) stopJanitor() {
	if m.janitor == nil {
		return
	}
	m.janitor.Process.Kill()
	m.janitor.Wait()
	m.janitorPipe.Close()
}
