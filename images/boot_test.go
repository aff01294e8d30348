package images

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
)

// TestBootReachesAgent boots Debian's kernel on the image in QEMU (TCG, or
// $YANK_TEST_ACCEL) and talks to the real qemu-ga over the agent socket.
func TestBootReachesAgent(t *testing.T) {
	e2e.Require(t)
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal("qemu-system-x86_64 not installed (run make deps)")
	}
	host := hostDebian(t)
	opts := hostOpts(t)
	img, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir() // 0700, removed by the testing package
	sock := filepath.Join(dir, "qga.sock")
	accel := os.Getenv("YANK_TEST_ACCEL")
	if accel == "" {
		accel = "tcg"
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, qemu,
		"-machine", "q35", "-accel", accel, "-m", "512", "-nographic",
		"-kernel", host.BzImage, "-initrd", img.Path,
		"-append", "console=ttyS0 panic=-1", "-no-reboot",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=qga0,path="+sock+",server=on,wait=off",
		"-device", "virtserialport,chardev=qga0,name="+AgentPortName,
	)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	console := &syncBuffer{}
	ready := make(chan string, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel() // kills QEMU
		cmd.Wait()
		if t.Failed() {
			t.Logf("console:\n%s", console.String())
		}
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			console.WriteString(line + "\n")
			if strings.Contains(line, ReadyMarker) || strings.Contains(line, AgentMissingMarker) {
				select {
				case ready <- line:
				default:
				}
			}
		}
		close(ready)
	}()

	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatal("QEMU exited before the guest was ready")
		}
		if !strings.Contains(line, ReadyMarker) {
			t.Fatalf("guest says: %s", line)
		}
	case <-time.After(120 * time.Second):
		t.Fatal("no ready marker within 120 s")
	}
	t.Logf("boot to %s (%s): %v, image %d bytes", ReadyMarker, accel, time.Since(start), img.Size)
	if !strings.Contains(console.String(), "YANK-INIT kernel="+host.Release) {
		t.Error("no YANK-INIT line with the kernel release")
	}

	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	qga := &qgaConn{t: t, c: conn, r: bufio.NewReader(conn)}

	// QGA has no greeting: 0xFF resets its parser, and the sync reply is
	// prefixed by 0xFF. Anything before that byte (qemu-ga 7.2 answers
	// the 0xFF itself with a JSON parse error) is discarded.
	qga.send("\xff" + `{"execute":"guest-sync-delimited","arguments":{"id":1234}}`)
	if _, err := qga.r.ReadBytes(0xff); err != nil {
		t.Fatalf("waiting for the sync delimiter: %v", err)
	}
	if reply := qga.line(); !strings.Contains(reply, "1234") {
		t.Fatalf("sync reply %q lacks 1234", reply)
	}
	var ping struct{ Return struct{} }
	qga.call(`{"execute":"guest-ping"}`, &ping)

	// guest-exec works and the command's output is captured (the agent's
	// children do not write to the console), and the modules got loaded.
	var started struct{ Return struct{ Pid int } }
	qga.call(`{"execute":"guest-exec","arguments":{"path":"/bin/cat","arg":["/proc/modules"],"capture-output":true}}`, &started)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct {
			Return struct {
				Exited   bool
				ExitCode int    `json:"exitcode"`
				OutData  string `json:"out-data"`
			}
		}
		qga.call(fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%d}}`, started.Return.Pid), &st)
		if st.Return.Exited {
			mods, _ := base64.StdEncoding.DecodeString(st.Return.OutData)
			if st.Return.ExitCode != 0 || !bytes.Contains(mods, []byte("virtio_console")) || !bytes.Contains(mods, []byte("virtio_pci")) {
				t.Errorf("cat /proc/modules: exit %d, output %q", st.Return.ExitCode, mods)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("guest-exec never exited")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// qgaConn is just enough of a QGA client for this test.
type qgaConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (q *qgaConn) send(msg string) {
	q.t.Helper()
	q.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := q.c.Write([]byte(msg + "\n")); err != nil {
		q.t.Fatal(err)
	}
}

func (q *qgaConn) line() string {
	q.t.Helper()
	q.c.SetDeadline(time.Now().Add(30 * time.Second))
	l, err := q.r.ReadString('\n')
	if err != nil {
		q.t.Fatalf("reading from qemu-ga: %v", err)
	}
	return l
}

func (q *qgaConn) call(msg string, v any) {
	q.t.Helper()
	q.send(msg)
	l := q.line()
	if err := json.Unmarshal([]byte(l), v); err != nil || strings.Contains(l, `"error"`) {
		q.t.Fatalf("%s -> %s (%v)", msg, l, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
