package kernels

// What a run will build before its first trial, and roughly how long that
// takes on this machine: a compile probe (gcc -O2 on a fixed generated
// file, about a second) scaled by the same probe and the real builds
// measured on a reference machine.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Pending is a build a run will do.
type Pending struct {
	Name string
	Cold bool   // from the source tarball; otherwise on a cached base's tree
	Base string // the base it is built on ("" when cold)
	Tree string // source: "6.1", "6.12" or "tree"
}

// PendingBuilds lists the builds opts need that the cache does not have,
// bases first, each once.
func PendingBuilds(ctx context.Context, opts []BuildOptions) ([]Pending, error) {
	var out []Pending
	seen := map[string]bool{}
	var visit func(o BuildOptions) (built bool, err error)
	visit = func(o BuildOptions) (bool, error) {
		if isDebian(o) {
			return true, nil
		}
		p, err := planBuild(ctx, o)
		if err != nil {
			return false, err
		}
		if _, ok := artifactFromEntry(p.entryDir()); ok {
			return exists(filepath.Join(p.entryDir(), "src", "yank-out", ".config")), nil
		}
		if seen[p.key] {
			return true, nil
		}
		seen[p.key] = true
		pd := Pending{Name: p.variant, Cold: true, Tree: sourceTree(p)}
		if p.base != "" {
			b := o
			b.Variant, b.Series, b.Name = p.base, nil, ""
			baseTree, err := visit(b)
			if err != nil {
				return false, err
			}
			if baseTree {
				pd.Cold, pd.Base = false, p.base
			}
		}
		out = append(out, pd)
		return true, nil
	}
	for _, o := range opts {
		if _, err := visit(o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sourceTree(p *plan) string {
	switch {
	case p.tree != "":
		return "tree"
	case strings.Contains(filepath.Base(p.tarball), "6.12"):
		return "6.12"
	default:
		return "6.1"
	}
}

// The reference: this team's machine (2 cores of an AMD EPYC, Oxide
// virtual Turin-like, TCG; gcc 12.2, ccache empty, light load), on
// 2026-12-06: the probe (median of 3: 636-701 ms) and the builds of `yank
// kernel build -timings` (stock 11m43s, rfc-v3 1m30s, rfc-v3-virtio 34s;
// stock-6.12 11m39s, rfc-v3-6.12 2m29s, rfc-v3-virtio-6.12 41s).
const (
	refProbe = 655 * time.Millisecond
	refCPUs  = 2
)

var refBuild = map[string]struct{ cold, incremental time.Duration }{
	"6.1":  {cold: 11*time.Minute + 43*time.Second, incremental: 62 * time.Second},
	"6.12": {cold: 11*time.Minute + 39*time.Second, incremental: 95 * time.Second},
	"tree": {cold: 11*time.Minute + 43*time.Second, incremental: 62 * time.Second},
}

// Estimate is the rough wall time of builds here, given probe (from
// ProbeCompile): the reference times scaled by probe/refProbe and by the
// CPUs make -j uses.
func Estimate(builds []Pending, probe time.Duration) time.Duration {
	scale := float64(probe) / float64(refProbe) * float64(refCPUs) / float64(runtime.NumCPU())
	var total time.Duration
	for _, b := range builds {
		r := refBuild[b.Tree]
		d := r.incremental
		if b.Cold {
			d = r.cold
		}
		total += time.Duration(float64(d) * scale)
	}
	return total
}

// ProbeCompile times gcc -O2 on a generated file, single-threaded: the
// quick measure Estimate scales by.
func ProbeCompile(ctx context.Context) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "yank-probe-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(probeSource()), 0o600); err != nil {
		return 0, err
	}
	var out bytes.Buffer
	start := time.Now()
	if err := run(ctx, dir, nil, &out, "gcc", "-O2", "-c", "-o", filepath.Join(dir, "probe.o"), src); err != nil {
		return 0, fmt.Errorf("compile probe: %w: %s", err, lastLines(out.String(), 5))
	}
	return time.Since(start), nil
}

// AnnounceBuilds says, before anything is built, which of specs' kernels
// will be built and roughly how long that takes here; it is quiet when
// the cache has them all.
func AnnounceBuilds(ctx context.Context, specs []Spec, cacheDir string, w io.Writer) error {
	var opts []BuildOptions
	for _, s := range specs {
		if s.BzImage == "" {
			opts = append(opts, s.Options(cacheDir, nil))
		}
	}
	builds, err := PendingBuilds(ctx, opts)
	if err != nil || len(builds) == 0 {
		return err
	}
	probe, err := ProbeCompile(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, b := range builds {
		how := "cold, " + b.Tree + " source"
		if !b.Cold {
			how = "on " + b.Base
		}
		names = append(names, fmt.Sprintf("%s (%s)", b.Name, how))
	}
	fmt.Fprintf(w, "kernels to build first: %s: roughly %.0f min on this machine (compile probe %s here, %s on the reference machine, where a cold 6.1 build took %s; a cold build is most of it, ccache hits make it shorter)\n",
		strings.Join(names, ", "), max(1, Estimate(builds, probe).Minutes()), probe.Round(10*time.Millisecond), refProbe, refBuild["6.1"].cold)
	return nil
}

// probeSource is kernel-like C: structs, loops, switches, recursion.
func probeSource() string {
	var b strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&b, `
struct s%[1]d { int a[16]; long b; struct s%[1]d *next; };
static long f%[1]d(struct s%[1]d *p, int n)
{
	long acc = %[1]d;
	for (int k = 0; k < n; k++) {
		switch ((k + %[1]d) %% 7) {
		case 0: acc += p->a[k & 15] * %[2]d; break;
		case 1: acc ^= p->b << (k & 7); break;
		case 2: if (p->next) acc += f%[1]d(p->next, n - 1); break;
		case 3: acc -= k * (long)p->a[(k + %[1]d) & 15]; break;
		default: acc = acc * 31 + k;
		}
	}
	return acc;
}
long g%[1]d(struct s%[1]d *p) { return f%[1]d(p, %[3]d) + f%[1]d(p, 5); }
`, i, i+3, i%13+3)
	}
	return b.String()
}
