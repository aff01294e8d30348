// Command yank orchestrates QEMU guests to test Linux kernels against PCIe
// surprise removal: it builds kernels and guest images, boots guests, pulls
// devices out from the host and reports whether the guest survived.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `yank: QEMU-backed hot-unplug tests for Linux kernels

usage: yank <command> [flags]

commands:
  run       run scenarios on kernels and print a verdict table
  kernel    list, build and locate kernels (yank kernel -h)
  libvirt   run the matrix on libvirt hosts: -host URI[#N] ... (yank libvirt -h)
  map       where a scenario's window lies after its anchor: a delay sweep, table and plot (yank map -h)
  report    HTML matrix report from Ginkgo JSON reports or verdict.json dirs (yank report -h)
  bisect-run     for git bisect run: build HEAD, run trials, exit 0/1/125
  bisect-report  summarize the steps of a bisect
  image     build and list guest initramfs images (yank image -h)
  help      show this text

Caches live in $YANK_CACHE (default ~/.cache/yank).
`

func main() {
	// Ctrl-C and SIGTERM cancel the context, so every guest is shut down
	// and its runtime dir removed before exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "yank:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder lets a command choose its exit status (e.g. bisect's 125).
type exitCoder interface{ ExitCode() int }

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return runCmd(ctx, rest, stdout, stderr)
	case "libvirt":
		return libvirtCmd(ctx, rest, stdout, stderr)
	case "report":
		return reportCmd(ctx, rest, stdout, stderr)
	case "map":
		return mapCmd(ctx, rest, stdout, stderr)
	case "bisect-run":
		return bisectRunCmd(ctx, rest, stdout, stderr)
	case "bisect-report":
		return bisectReportCmd(ctx, rest, stdout, stderr)
	case "kernel":
		return kernelCmd(ctx, rest, stdout, stderr)
	case "image":
		return imageCmd(ctx, rest, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
