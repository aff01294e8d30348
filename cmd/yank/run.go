package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
)

// runCmd boots one guest per removal kind and pulls its disk out, printing
// what the host and the guest saw. (The timed unbind-race scenarios and the
// verdict table build on this.)
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kernel := fs.String("kernel", "debian", "kernel variant (see `yank kernel list`)")
	timeout := fs.Duration("timeout", 3*time.Minute, "deadline for each guest")
	if err := fs.Parse(args); err != nil {
		return err
	}
	k, err := resolveKernel(ctx, *kernel, stderr)
	if err != nil {
		return err
	}
	spec, err := guestSpec(ctx, "run-"+k.Variant, k)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kernel %s: %s\n", k.Variant, k.BzImage)
	fmt.Fprintf(stdout, "%-9s %-6s %-8s %-11s %s\n", "REMOVAL", "RESULT", "BOOT", "TO-DELETED", "GUEST SAW")
	failed := 0
	for _, kind := range []string{"graceful", "surprise"} {
		r, err := removeOnce(ctx, spec, kind, *timeout)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%-9s %-6s %s\n", kind, "ERROR", strings.ReplaceAll(err.Error(), "\n", "\n    "))
			continue
		}
		fmt.Fprintf(stdout, "%-9s %-6s %-8s %-11s %s\n", kind, "ok", r.boot.Round(10*time.Millisecond), r.toDeleted.Round(time.Millisecond), r.guestSaw)
	}
	if failed > 0 {
		return fmt.Errorf("%d of 2 removals failed", failed)
	}
	return nil
}

type removal struct {
	boot, toDeleted time.Duration
	guestSaw        string
}

// removeOnce boots spec, removes disk0 the given way, and checks the guest
// no longer lists it.
func removeOnce(ctx context.Context, spec machine.Spec, kind string, timeout time.Duration) (removal, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	spec.Name += "-" + kind
	m, err := machine.Boot(ctx, spec, machine.Options{})
	if err != nil {
		return removal{}, err
	}
	defer m.Close()
	r := removal{boot: time.Since(m.Started)}
	mark := m.Console.Mark()
	start := time.Now()
	switch kind {
	case "graceful":
		_, err = qmp.Graceful(ctx, m.QMP, "disk0")
	default:
		var s qmp.SurpriseResult
		s, err = qmp.Surprise(ctx, m.QMP, "disk0")
		start = s.Cut
	}
	if err != nil {
		return r, err
	}
	r.toDeleted = time.Since(start)
	// Give pciehp a moment to log and unbind, then confirm through the agent.
	wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
	defer wcancel()
	for {
		st, err := m.Agent.RunShell(wctx, "ls /sys/bus/pci/devices/0000:01:00.0 >/dev/null 2>&1 && echo present || echo gone")
		if err != nil {
			return r, fmt.Errorf("asking the guest after removal: %w", err)
		}
		if strings.TrimSpace(string(st.Stdout)) == "gone" {
			break
		}
		select {
		case <-wctx.Done():
			return r, fmt.Errorf("guest still lists the device 15 s after DEVICE_DELETED")
		case <-time.After(200 * time.Millisecond):
		}
	}
	r.guestSaw = pciehpLines(m, mark)
	return r, nil
}

// pciehpLines returns the slot events pciehp logged after mark.
func pciehpLines(m *machine.Machine, mark int) string {
	var saw []string
	for _, e := range m.Console.Lines(mark) {
		if i := strings.Index(e.Item, "Slot("); i >= 0 && strings.Contains(e.Item, "pciehp") {
			saw = append(saw, e.Item[i:])
		}
	}
	return strings.Join(saw, "; ")
}
