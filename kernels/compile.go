package kernels

// The build stage: make bzImage, with progress, and the make environment
// every stage shares.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// makeEnv is the environment for make: the caller's, minus variables that
// would silently change what Kbuild does, plus ccache's directory.
func (b *builder) makeEnv() []string {
	drop := []string{"ARCH", "CROSS_COMPILE", "O", "KBUILD_", "KCONFIG_", "CC", "HOSTCC", "LD", "CFLAGS", "CPPFLAGS", "LDFLAGS", "KCFLAGS", "KAFLAGS", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "LLVM", "LC_ALL", "CCACHE_"}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		dropped := slices.ContainsFunc(drop, func(d string) bool {
			return k == d || strings.HasSuffix(d, "_") && strings.HasPrefix(k, d)
		})
		if !dropped {
			env = append(env, kv)
		}
	}
	env = append(env, "LC_ALL=C", "CCACHE_DIR="+filepath.Join(b.root, "ccache"), "CCACHE_MAXSIZE="+CcacheMaxSize(),
		"KBUILD_BUILD_USER=yank", "KBUILD_BUILD_HOST=yank")
	if b.opts.NoCcache {
		// Keep CC="ccache gcc" (a different CC would change every recorded
		// command line and rebuild everything); ccache then just runs gcc.
		env = append(env, "CCACHE_DISABLE=1")
	}
	return env
}

func (b *builder) makeArgs(targets ...string) []string {
	args := []string{"-C", b.src, "O=" + b.obj, "ARCH=x86_64"}
	if hasCcache() {
		args = append(args, "CC=ccache gcc", "HOSTCC=ccache gcc")
	}
	return append(args, targets...)
}

var (
	ccacheOnce sync.Once
	ccacheOK   bool
)

func hasCcache() bool {
	ccacheOnce.Do(func() { ccacheOK = run(context.Background(), "", nil, io.Discard, "ccache", "--version") == nil })
	return ccacheOK
}

// progressRe matches Kbuild's quiet lines: "  CC      drivers/pci/probe.o".
var progressRe = regexp.MustCompile(`^  ([A-Z][A-Z0-9_-]*)\s+(\S+)`)

// defaultColdLines estimates the quiet-output lines of a cold build of
// this config when no earlier build is recorded (the first stock build).
const defaultColdLines = 1662

// compile runs make bzImage, printing progress every ProgressEvery
// against an estimate of the lines the build will print.
func (b *builder) compile(ctx context.Context) error {
	jobs := b.opts.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	estimate := b.estimateLines()
	pr, pw := io.Pipe()
	var (
		mu   sync.Mutex
		last string
		n    int
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(b.log, line)
			if m := progressRe.FindStringSubmatch(line); m != nil {
				mu.Lock()
				n++
				last = m[1] + " " + m[2]
				mu.Unlock()
			}
		}
		io.Copy(io.Discard, pr)
	}()
	every := b.opts.ProgressEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	t0 := time.Now()
	tick := time.NewTicker(every)
	stopTick := make(chan struct{})
	go func() {
		for {
			select {
			case <-tick.C:
				mu.Lock()
				cnt, l := n, last
				mu.Unlock()
				pct := ""
				if estimate > 0 {
					pct = fmt.Sprintf("%d%% ", min(cnt*100/estimate, 99))
				} else {
					pct = fmt.Sprintf("%d steps ", cnt)
				}
				b.progressf("build: %s(%s) %s%s", pct, l, roundDur(time.Since(t0)), eta(cnt, estimate, time.Since(t0)))
			case <-stopTick:
				return
			}
		}
	}()
	fmt.Fprintf(b.log, "make -j%d (estimate %d lines)\n", jobs, estimate)
	if b.marker != "" {
		if err := os.WriteFile(b.marker, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o600); err != nil {
			return err
		}
	}
	err := run(ctx, "", b.makeEnv(), pw, "make", b.makeArgs(fmt.Sprintf("-j%d", jobs), "bzImage")...)
	if b.marker != "" && ctx.Err() == nil && exitedByItself(err) {
		// make ran to its end, failed or not: nothing is left cut short.
		os.Remove(b.marker)
	}
	pw.Close()
	<-done
	tick.Stop()
	close(stopTick)
	b.makeLines = n
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("make bzImage: %w", err)
	}
	return nil
}

// eta is the time left, in the build's own terms: the lines still to come
// at the rate lines came so far. It says nothing until 5 % are done and
// 30 s have passed (Kbuild's first lines are quick ones).
func eta(done, estimate int, elapsed time.Duration) string {
	if estimate <= 0 || done*20 < estimate || elapsed < 30*time.Second || done >= estimate {
		return ""
	}
	left := time.Duration(float64(elapsed) * float64(estimate-done) / float64(done))
	return ", about " + left.Round(10*time.Second).String() + " left"
}

// estimateLines finds the line count of an earlier build of the same
// config and kind (cold or incremental); 0 means unknown.
func (b *builder) estimateLines() int {
	cfg, err := os.ReadFile(filepath.Join(b.obj, ".config"))
	if err != nil {
		return 0
	}
	want := sha256Hex(cfg)
	ents, _ := os.ReadDir(b.kernelsDir())
	var best Meta
	for _, e := range ents {
		m, err := readMeta(filepath.Join(b.kernelsDir(), e.Name()))
		if err != nil || m.ConfigSHA256 != want || m.Incremental != (b.baseEntry != "") || m.MakeLines == 0 {
			continue
		}
		if m.Created.After(best.Created) {
			best = m
		}
	}
	if best.MakeLines > 0 {
		return best.MakeLines
	}
	if b.baseEntry == "" {
		return defaultColdLines
	}
	return 0
}
