package images

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// addBusybox adds busybox at /bin/busybox and a symlink to it for every
// applet, where busybox itself would install it (--list-full prints paths
// such as "sbin/insmod" and "usr/bin/[").
func (t *tree) addBusybox(ctx context.Context, bin string) error {
	if err := t.addBinary(bin, "/bin/busybox"); err != nil {
		return fmt.Errorf("%w; install busybox-static (apt-get install busybox-static)", err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "--list-full")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("images: %s --list-full: %w: %s (is it a full busybox? install busybox-static)",
			bin, err, strings.TrimSpace(stderr.String()))
	}
	n := 0
	for _, l := range strings.Fields(string(out)) {
		p := path.Clean("/" + l)
		if p == "/bin/busybox" {
			continue
		}
		t.symlink(p, "/bin/busybox")
		n++
	}
	if n == 0 {
		return fmt.Errorf("images: %s --list-full listed no applets", bin)
	}
	return nil
}
