package kernels

// What a run will build before its first trial, and roughly how long that
// takes on this machine: from its own earlier builds when the cache has
// them, else a compile probe (gcc -O2 on a fixed generated file, about a
// second) against two reference machines' real builds, as a range.

import (
	"bytes"
	"context"
	"encoding/json"
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

// The references: two 2-core TCG machines with gcc 12.2, ccache empty,
// light load, and `yank kernel build -timings`. The compile probe was
// about the same on both (AMD EPYC, Oxide virtual Turin-like, 2026-12-06:
// median 655 ms; Intel Xeon, 2026-12-07: 681 ms), yet their cold builds
// differed threefold (stock 11m43s and 3m50s; stock-6.12 11m39s and
// 5m26s; a variant on a cached base 62-95 s and 11-35 s): a probe places
// a machine in that range, no closer. A machine's own earlier builds
// (MeasuredHere) are better, and are used when the cache has them.
const (
	refProbe = 668 * time.Millisecond
	refCPUs  = 2
)

// BuildTimes is how long a full (cold) build and an incremental one took.
type BuildTimes struct{ Cold, Incremental time.Duration }

// refBuild is per source tree: the slow machine's and the fast one's.
var refBuild = map[string][2]BuildTimes{
	"6.1":  {{11*time.Minute + 43*time.Second, 62 * time.Second}, {3*time.Minute + 50*time.Second, 32 * time.Second}},
	"6.12": {{11*time.Minute + 39*time.Second, 95 * time.Second}, {5*time.Minute + 26*time.Second, 35 * time.Second}},
	"tree": {{11*time.Minute + 43*time.Second, 62 * time.Second}, {3*time.Minute + 50*time.Second, 32 * time.Second}},
}

// fullBuildLines: a build of at least this many Kbuild lines, not
// incremental, compiled the whole kernel (a cold 6.1 build prints ~1700).
const fullBuildLines = 1000

// MeasuredHere reads this machine's own builds from the cache entries'
// meta.json: per source tree, the newest full build and the newest
// incremental one (builds made with another -j are left out).
func MeasuredHere(root string) map[string]BuildTimes {
	out := map[string]BuildTimes{}
	dirs, _ := os.ReadDir(filepath.Join(root, "kernels"))
	type seen struct{ cold, incr time.Time }
	newest := map[string]seen{}
	for _, d := range dirs {
		var m struct {
			Release     string    `json:"release"`
			Source      string    `json:"source"`
			Incremental bool      `json:"incremental"`
			MakeLines   int       `json:"make_lines"`
			Total       float64   `json:"total_seconds"`
			Jobs        int       `json:"jobs"`
			Created     time.Time `json:"created"`
		}
		b, err := os.ReadFile(filepath.Join(root, "kernels", d.Name(), "meta.json"))
		if err != nil || json.Unmarshal(b, &m) != nil || m.Total <= 0 || m.Jobs != runtime.NumCPU() {
			continue
		}
		tree := "6.1"
		switch {
		case strings.HasPrefix(m.Source, "tree"):
			tree = "tree"
		case strings.HasPrefix(m.Release, "6.12"):
			tree = "6.12"
		}
		took := time.Duration(m.Total * float64(time.Second))
		bt, n := out[tree], newest[tree]
		switch {
		case !m.Incremental && m.MakeLines >= fullBuildLines && m.Created.After(n.cold):
			bt.Cold, n.cold = took, m.Created
		case m.Incremental && m.Created.After(n.incr):
			bt.Incremental, n.incr = took, m.Created
		}
		out[tree], newest[tree] = bt, n
	}
	return out
}

// Estimate is the rough wall time of builds here, as a range: each build
// from this machine's own measured one of its kind (here), else the two
// reference machines' times scaled by probe/refProbe and by the CPUs
// make -j uses. fromHere says whether every build came from here.
func Estimate(builds []Pending, probe time.Duration, here map[string]BuildTimes) (low, high time.Duration, fromHere bool) {
	scale := float64(probe) / float64(refProbe) * float64(refCPUs) / float64(runtime.NumCPU())
	fromHere = true
	for _, b := range builds {
		pick := func(t BuildTimes) time.Duration {
			if b.Cold {
				return t.Cold
			}
			return t.Incremental
		}
		if d := pick(here[b.Tree]); d > 0 {
			low, high = low+d, high+d
			continue
		}
		fromHere = false
		r := refBuild[b.Tree]
		slow, fast := time.Duration(float64(pick(r[0]))*scale), time.Duration(float64(pick(r[1]))*scale)
		low, high = low+min(slow, fast), high+max(slow, fast)
	}
	return low, high, fromHere
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
	root, err := cacheRoot(cacheDir)
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
	here := MeasuredHere(root)
	if took, _, ok := Estimate(builds, 0, here); ok {
		fmt.Fprintf(w, "kernels to build first: %s: about %s on this machine (from its own earlier builds of the same kinds, in %s)\n",
			strings.Join(names, ", "), roundMinutes(took), root)
		return nil
	}
	probe, err := ProbeCompile(ctx)
	if err != nil {
		return err
	}
	low, high, _ := Estimate(builds, probe, here)
	fmt.Fprintf(w, "kernels to build first: %s: roughly %s on this machine (compile probe %s here; two machines with a probe like it (655-681 ms) built a cold 6.1 kernel in %s and %s, so the probe gives a range; a cold build is most of it, and each build prints its time left as it goes)\n",
		strings.Join(names, ", "), minutesRange(low, high), probe.Round(10*time.Millisecond),
		refBuild["6.1"][1].Cold, refBuild["6.1"][0].Cold)
	return nil
}

// minutesRange prints "6-18 min".
func minutesRange(low, high time.Duration) string {
	return fmt.Sprintf("%.0f-%.0f min", max(1, low.Minutes()), max(1, high.Minutes()))
}

// roundMinutes prints d as whole minutes ("4 min"), or "under a minute".
func roundMinutes(d time.Duration) string {
	if d < time.Minute {
		return "under a minute"
	}
	return fmt.Sprintf("%.0f min", d.Minutes())
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
