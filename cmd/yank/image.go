package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/yank-dev/yank/images"
)

const imageUsage = `usage:
  yank image build [--modules-dir DIR --module NAME ...] [--extra-binary PATH ...]
                   [--busybox PATH] [--agent PATH] [--cache-dir DIR]
      build (or find in the cache) the guest initramfs and print its path
  yank image list [--cache-dir DIR]
      list cached images with size and age
`

// imageCmd implements "yank image ...".
func imageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, imageUsage)
		return errors.New("image: missing subcommand")
	}
	switch args[0] {
	case "build":
		return imageBuild(ctx, args[1:], stdout, stderr)
	case "list", "ls":
		return imageList(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, imageUsage)
		return nil
	default:
		fmt.Fprint(stderr, imageUsage)
		return fmt.Errorf("image: unknown subcommand %q", args[0])
	}
}

func imageBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var opts images.Options
	fs := flag.NewFlagSet("yank image build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opts.CacheDir, "cache-dir", "", "cache root (default $YANK_CACHE, $XDG_CACHE_HOME/yank or ~/.cache/yank)")
	fs.StringVar(&opts.ModulesDir, "modules-dir", "", "kernel modules dir, /lib/modules/<release>")
	fs.Var((*imageFlagList)(&opts.Modules), "module", "module to load at boot, with its dependencies (repeat, or comma-separate)")
	fs.Var((*imageFlagList)(&opts.ExtraBinaries), "extra-binary", "host binary to include with its libraries (repeat)")
	fs.StringVar(&opts.Busybox, "busybox", "", "static busybox (default /bin/busybox)")
	fs.StringVar(&opts.Agent, "agent", "", "qemu-ga binary (default /usr/sbin/qemu-ga)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("image build: unexpected arguments %q", fs.Args())
	}
	img, err := images.Build(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, img.Path)
	return nil
}

func imageList(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("yank image list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("cache-dir", "", "cache root (default $YANK_CACHE, $XDG_CACHE_HOME/yank or ~/.cache/yank)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	entries, err := images.List(*root)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tSIZE\tAGE\tPATH")
	for _, e := range entries {
		fmt.Fprintf(tw, "%.12s\t%.1f MiB\t%s\t%s\n", e.Key, float64(e.Size)/(1<<20), imageAge(time.Since(e.ModTime)), e.Path)
	}
	return tw.Flush()
}

// imageAge formats a cache entry's age coarsely, like "5m" or "3d".
func imageAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// imageFlagList is a repeatable string flag that also splits on commas.
type imageFlagList []string

func (l *imageFlagList) String() string { return strings.Join(*l, ",") }

func (l *imageFlagList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
