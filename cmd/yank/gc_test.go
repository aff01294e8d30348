package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `yank kernel gc` removes a guest snapshot whose kernel is gone and keeps
// one whose kernel is there (and -n removes nothing).
func TestKernelGCRemovesOrphanedSnapshots(t *testing.T) {
	cache := t.TempDir()
	kernel := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(kernel, []byte("k"), 0o600)
	for key, k := range map[string]string{"aaaa": kernel, "bbbb": "/nonexistent/bzImage"} {
		dir := filepath.Join(cache, "snapshots", key)
		os.MkdirAll(dir, 0o700)
		os.WriteFile(filepath.Join(dir, "state"), []byte("state"), 0o600)
		meta, _ := json.Marshal(map[string]any{"key": key, "kernel": k, "initrd": k, "bytes": 5})
		os.WriteFile(filepath.Join(dir, "meta.json"), meta, 0o600)
	}
	for _, dry := range []bool{true, false} {
		args := []string{"kernel", "gc", "-cache", cache}
		if dry {
			args = append(args, "-n")
		}
		var out, errw bytes.Buffer
		if err := dispatch(context.Background(), args, &out, &errw); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errw.String())
		}
		o := out.String()
		if !strings.Contains(o, filepath.Join("snapshots", "bbbb")+": snapshot of /nonexistent/bzImage") || !strings.Contains(o, "its kernel or guest image is gone") ||
			!strings.Contains(o, "kept "+filepath.Join(cache, "snapshots", "aaaa")) {
			t.Fatalf("%v output:\n%s", args, o)
		}
		_, err := os.Stat(filepath.Join(cache, "snapshots", "bbbb"))
		if gone := os.IsNotExist(err); gone == dry {
			t.Fatalf("%v: orphaned snapshot gone=%v", args, gone)
		}
		if _, err := os.Stat(filepath.Join(cache, "snapshots", "aaaa")); err != nil {
			t.Fatalf("%v removed a live snapshot", args)
		}
	}
}
