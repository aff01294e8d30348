package guestagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/yank-dev/yank/guestagent/agenttest"
)

// fakeFiles gives a fakeAgent guest-file-* commands over in-memory files.
type fakeFiles struct {
	mu       sync.Mutex
	files    map[string][]byte
	open     map[int64]*fakeFile
	next     int64
	reads    int
	closes   int
	flushErr string // desc for a failing guest-file-flush
}

type fakeFile struct {
	path string
	pos  int
	buf  []byte // pending writes, like a stdio buffer
}

func addFakeFiles(f *agenttest.Agent) *fakeFiles {
	ff := &fakeFiles{files: map[string][]byte{}, open: map[int64]*fakeFile{}, next: 1000}
	f.Handle("guest-file-open", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ Path, Mode string }
		json.Unmarshal(args, &a)
		ff.mu.Lock()
		defer ff.mu.Unlock()
		if _, ok := ff.files[a.Path]; !ok && a.Mode == "r" {
			w.Fail("GenericError", "failed to open file '"+a.Path+"' (mode: 'r'): No such file or directory")
			return
		}
		if a.Mode == "w" {
			ff.files[a.Path] = nil
		}
		ff.next++
		ff.open[ff.next] = &fakeFile{path: a.Path}
		w.Reply(ff.next)
	})
	f.Handle("guest-file-read", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ Handle, Count int }
		json.Unmarshal(args, &a)
		ff.mu.Lock()
		defer ff.mu.Unlock()
		ff.reads++
		h := ff.open[int64(a.Handle)]
		data := ff.files[h.path][h.pos:]
		n := min(a.Count, len(data))
		h.pos += n
		w.Reply(map[string]any{"count": n, "buf-b64": data[:n], "eof": n < a.Count})
	})
	f.Handle("guest-file-write", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct {
			Handle int64
			Buf    []byte `json:"buf-b64"`
		}
		json.Unmarshal(args, &a)
		ff.mu.Lock()
		defer ff.mu.Unlock()
		h := ff.open[a.Handle]
		h.buf = append(h.buf, a.Buf...)
		w.Reply(map[string]any{"count": len(a.Buf), "eof": false})
	})
	f.Handle("guest-file-flush", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ Handle int64 }
		json.Unmarshal(args, &a)
		ff.mu.Lock()
		defer ff.mu.Unlock()
		if ff.flushErr != "" {
			w.Fail("GenericError", ff.flushErr)
			return
		}
		h := ff.open[a.Handle]
		ff.files[h.path] = append(ff.files[h.path], h.buf...)
		h.buf = nil
		w.Reply(struct{}{})
	})
	f.Handle("guest-file-close", func(w *agenttest.Conn, args json.RawMessage) {
		var a struct{ Handle int64 }
		json.Unmarshal(args, &a)
		ff.mu.Lock()
		defer ff.mu.Unlock()
		ff.closes++
		if _, ok := ff.open[a.Handle]; !ok {
			w.Fail("GenericError", "handle has not been found")
			return
		}
		delete(ff.open, a.Handle)
		w.Reply(struct{}{})
	})
	return ff
}

func TestReadFileChunks(t *testing.T) {
	f := agenttest.New(t)
	ff := addFakeFiles(f)
	want := randomBytes(10_000)
	ff.files["/data"] = want
	f.Start()
	c := dialFake(t, f, WithChunkSize(1000))
	got, err := c.ReadFile(context.Background(), "/data")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	if ff.reads != 11 || ff.closes != 1 || len(ff.open) != 0 {
		t.Fatalf("reads=%d closes=%d open=%d", ff.reads, ff.closes, len(ff.open))
	}
}

func TestReadFileLarge(t *testing.T) {
	f := agenttest.New(t)
	ff := addFakeFiles(f)
	want := randomBytes(3<<20 + 5)
	ff.files["/big"] = want
	f.Start()
	c := dialFake(t, f)
	got, err := c.ReadFile(context.Background(), "/big")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, %v", len(got), err)
	}
}

func TestWriteFileChunks(t *testing.T) {
	f := agenttest.New(t)
	ff := addFakeFiles(f)
	f.Start()
	c := dialFake(t, f, WithChunkSize(100))
	data := bytes.Repeat([]byte("0123456789"), 55)
	if err := c.WriteFile(context.Background(), "/out", data, ""); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ff.files["/out"], data) || ff.closes != 1 {
		t.Fatalf("wrote %q, closes=%d", ff.files["/out"], ff.closes)
	}
}

func TestWriteSysfsSurfacesKernelError(t *testing.T) {
	f := agenttest.New(t)
	ff := addFakeFiles(f)
	ff.flushErr = "failed to flush file: Invalid argument"
	f.Start()
	c := dialFake(t, f)
	err := c.WriteSysfs(context.Background(), "/sys/bus/pci/drivers/virtio-pci/unbind", "bogus")
	if !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("want EINVAL, got %v", err)
	}
	var qerr *Error
	if !errors.As(err, &qerr) || qerr.Command != "guest-file-flush" {
		t.Fatalf("want the flush error, got %v", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, `"bogus"`) || !strings.Contains(msg, "virtio-pci/unbind") || !strings.Contains(msg, "Invalid argument") {
		t.Fatalf("error does not say what failed: %v", err)
	}
	if ff.closes != 1 {
		t.Fatalf("closed %d times, want exactly once", ff.closes)
	}

	ff.flushErr = ""
	if err := c.WriteSysfs(context.Background(), "/sys/x", "1"); err != nil || string(ff.files["/sys/x"]) != "1" {
		t.Fatalf("%q %v", ff.files["/sys/x"], err)
	}
}
