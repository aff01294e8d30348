package hotunplug_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/yank-dev/yank/engine"

	"github.com/onsi/ginkgo/v2/types"
)

// shared is what process 1 hands every parallel process.
type shared struct {
	Artifacts string                  `json:"artifacts"` // root of the evidence tree
	TempRoot  bool                    `json:"temp_root"` // created by the suite: keep only failures' evidence
	Guests    map[string]engine.Guest `json:"guests"`    // by kernel name
}

var run shared

// neededKernels lists the kernels of the trials the label filter selects,
// so a smoke run does not build a kernel only the matrix uses.
func neededKernels() []string {
	match, err := types.ParseLabelFilter(GinkgoLabelFilter())
	Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, t := range trials {
		if match(t.Labels()) && !slices.Contains(names, t.Kernel.Name) {
			names = append(names, t.Kernel.Name)
		}
	}
	return names
}

// Kernels are built (or found in the cache) and images made once, on
// process 1; a kernel that cannot be resolved or built fails the whole
// suite: a matrix missing a kernel would look green for the wrong reason.
var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	s := shared{Artifacts: cfg.artifacts, Guests: map[string]engine.Guest{}}
	if s.Artifacts == "" {
		dir, err := os.MkdirTemp("", "yank-suite-")
		Expect(err).NotTo(HaveOccurred())
		s.Artifacts, s.TempRoot = dir, true
		// Runs on process 1 once every process is done, even when this
		// node fails: the trials removed their dirs if they passed, so
		// what is left is failures' evidence, or nothing.
		DeferCleanup(func() {
			removeEmptyDirs(dir)
			if _, err := os.Stat(dir); err == nil {
				GinkgoWriter.Printf("evidence of failed trials kept in %s\n", dir)
			}
		})
	}
	Expect(os.MkdirAll(s.Artifacts, 0o700)).To(Succeed())
	for _, k := range cfg.opts.Kernels {
		// A series that does not apply fails here, before any build.
		if slices.Contains(neededKernels(), k.Name) {
			Expect(k.Spec.Check(ctx, "")).To(Succeed(), "kernel %s (%s)", k.Name, k.Ref())
		}
	}
	for _, k := range cfg.opts.Kernels {
		if !slices.Contains(neededKernels(), k.Name) {
			continue
		}
		By("resolving kernel " + k.Name)
		start := time.Now()
		g, err := engine.Prepare(ctx, k.Spec, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred(), "kernel %s (%s) could not be resolved or built, or its image made; fix it or leave it out of -yank.kernels", k.Name, k.Ref())
		s.Guests[k.Name] = g
		GinkgoWriter.Printf("kernel %s: %s (%s) + %s, ready in %s\n", k.Name, g.Kernel, g.Release, g.Initrd, time.Since(start).Round(time.Second))
	}
	AddReportEntry("yank.seed", cfg.opts.Seed)
	AddReportEntry("yank.artifacts", s.Artifacts)
	b, err := json.Marshal(s)
	Expect(err).NotTo(HaveOccurred())
	return b
}, func(b []byte) {
	Expect(json.Unmarshal(b, &run)).To(Succeed())
}, NodeTimeout(90*time.Minute)) // cold kernel builds take ~15 min each on 2 cores

// removeEmptyDirs removes the empty dirs under (and including) root,
// deepest first.
func removeEmptyDirs(root string) {
	var dirs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i]) // fails, as intended, on non-empty dirs
	}
}
