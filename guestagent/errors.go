package guestagent

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
)

var (
	// ErrAgentSilent means a guest-sync-delimited got no matching reply in
	// time: the agent is not running (yet), or is wedged.
	ErrAgentSilent = errors.New("guest agent not answering")
	// ErrUnknownPID is matched by the error guest-exec-status returns for a
	// pid it does not know, including one it already reported as exited.
	ErrUnknownPID = errors.New("guest agent does not know this pid")
	// ErrClosed is returned by calls on a closed Client.
	ErrClosed = errors.New("guest agent client closed")
	// ErrNotExited: the agent started the command, and the deadline passed
	// before it finished (Wait saw it still running, or Run's status call
	// got no reply in the time left). The guest is slow, not silent.
	ErrNotExited = errors.New("guest command still running")
)

// Error is an error reply from the agent: {"error":{"class":..,"desc":..}}.
type Error struct {
	Command string // the command that failed, e.g. "guest-file-open"
	Class   string // QAPI error class, e.g. "GenericError", "CommandNotFound"
	Desc    string // human-readable description from the agent
}

func (e *Error) Error() string {
	return fmt.Sprintf("guestagent: %s: %s (%s)", e.Command, e.Desc, e.Class)
}

// Unwrap exposes the guest errno when Desc ends in a strerror text, as QGA's
// file and exec errors do ("failed to flush file: Invalid argument"), so
// errors.Is(err, syscall.EINVAL) works on the host.
func (e *Error) Unwrap() error {
	if errno, ok := e.Errno(); ok {
		return errno
	}
	return nil
}

// Errno parses the trailing strerror text of Desc. Guest and host are both
// Linux, so host errno numbers are the guest's.
func (e *Error) Errno() (syscall.Errno, bool) {
	i := strings.LastIndex(e.Desc, ": ")
	if i < 0 {
		return 0, false
	}
	errno, ok := errnoByText()[strings.ToLower(strings.TrimSpace(e.Desc[i+2:]))]
	return errno, ok
}

// Is makes errors.Is(err, ErrUnknownPID) match QGA's reply for a forgotten
// pid, which is only a GenericError with a fixed text.
func (e *Error) Is(target error) bool {
	return target == ErrUnknownPID &&
		e.Command == "guest-exec-status" &&
		strings.Contains(e.Desc, "Invalid parameter 'pid'")
}

// errnoByText maps lower-cased strerror texts to errnos (Go's texts are
// glibc's, lower-cased).
var errnoByText = sync.OnceValue(func() map[string]syscall.Errno {
	m := make(map[string]syscall.Errno)
	for i := 1; i < 256; i++ {
		errno := syscall.Errno(i)
		text := strings.ToLower(errno.Error())
		if _, dup := m[text]; !dup && !strings.HasPrefix(text, "errno ") {
			m[text] = errno
		}
	}
	return m
})

// ExitError is returned by ExecStatus.Err for a command that failed.
type ExitError struct {
	Path   string
	Status ExecStatus
}

func (e *ExitError) Error() string {
	s := e.Status
	what := fmt.Sprintf("exit code %d", s.ExitCode)
	if s.Signal != 0 {
		what = fmt.Sprintf("killed by signal %d", s.Signal)
	}
	msg := fmt.Sprintf("guestagent: %s: %s", e.Path, what)
	if stderr := strings.TrimSpace(string(s.Stderr)); stderr != "" {
		const max = 512
		if len(stderr) > max {
			stderr = "..." + stderr[len(stderr)-max:]
		}
		msg += ": " + stderr
	}
	return msg
}
