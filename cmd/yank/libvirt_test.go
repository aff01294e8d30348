package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/machine/libvirt/libvirttest"
)

func TestLibvirtCmdFlags(t *testing.T) {
	ctx := context.Background()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no host":      {nil, "at least one -host"},
		"bad uri":      {[]string{"-host", "http://x/"}, "qemu driver URI"},
		"bad capacity": {[]string{"-host", "qemu:///system#0"}, "capacity"},
		"bad scenario": {[]string{"-host", "qemu:///system", "-scenarios", "nope"}, "nope"},
		"bad offset":   {[]string{"-host", "qemu:///system", "-offsets", "1h"}, "out of range"},
		"argument":     {[]string{"-host", "qemu:///system", "extra"}, "unexpected argument"},
	} {
		var out, errOut bytes.Buffer
		err := libvirtCmd(ctx, tc.args, &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, tc.want)
		}
	}
}

// TestLibvirtCmd runs `yank libvirt` itself over both connections.
func TestLibvirtCmd(t *testing.T) {
	e2e.Require(t)
	d := libvirttest.Start(t)
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := libvirtCmd(context.Background(), []string{"-host", d.UnixURI() + "#1", "-host", d.TCPURI() + "#1",
		"-kernels", "stock", "-scenarios", "surprise-idle", "-offsets", "0s", "-repeat", "2", "-artifacts", dir}, &out, &errOut)
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"host " + "qemu+tcp://" + d.TCPAddr + "/system: 1 PASS", "PASS", "matrix.json"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, f := range []string{"matrix.json", "matrix.txt", "stock/surprise-idle/0s-r1/verdict.json", "stock/surprise-idle/0s-r2/qemu.log"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
}
