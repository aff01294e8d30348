package kernels

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// usedFile's mtime is the last time a build or run used a cache entry;
// GC keeps entries used recently even when no current variant names them
// (a user's series, a bisect's commits).
const usedFile = "used"

func markUsed(entry string) {
	p := filepath.Join(entry, usedFile)
	now := time.Now()
	if os.Chtimes(p, now, now) != nil {
		_ = os.WriteFile(p, nil, 0o600) // best effort: GC then goes by the build time
	}
}

// lastUsed is the later of the entry's build and its last use.
func lastUsed(entry string, m Meta) time.Time {
	t := m.Created
	if st, err := os.Stat(filepath.Join(entry, usedFile)); err == nil && st.ModTime().After(t) {
		t = st.ModTime()
	}
	return t
}

// CcacheMaxSize bounds ccache's directory in every build (CCACHE_MAXSIZE)
// and in GC; YANK_CCACHE_MAXSIZE overrides it (ccache's syntax, e.g. 2G).
func CcacheMaxSize() string { return cmp.Or(os.Getenv("YANK_CCACHE_MAXSIZE"), "5G") }

// GCOptions select what GC removes.
type GCOptions struct {
	CacheDir string        // "" = CacheRoot
	Keep     time.Duration // entries used within Keep stay even if no variant names them
	DryRun   bool          // only report
}

// GCItem is one cache entry GC looked at.
type GCItem struct {
	Path  string `json:"path"`
	What  string `json:"what"` // e.g. "kernel rfc-v3 (6.1.192)"
	Why   string `json:"why"`  // why it goes or stays
	Bytes int64  `json:"bytes"`
}

// GCResult says what GC removed and kept.
type GCResult struct {
	Removed []GCItem `json:"removed"`
	Kept    []GCItem `json:"kept"`
	// Freed is what the filesystem gained (entries share hard-linked
	// sources, so it is less than the sum of their sizes); 0 in a dry run.
	Freed               int64    `json:"freed_bytes"`
	CcacheBefore        int64    `json:"ccache_before_bytes"`
	CcacheAfter         int64    `json:"ccache_after_bytes"`
	CcacheMax           string   `json:"ccache_max"`
	UnavailableVariants []string `json:"unavailable_variants,omitempty"`
}

// GC removes the cache entries no current variant (built-in or from the
// variants file in use) resolves to and no build used within Keep: kernel
// entries, unpacked sources of tarballs that changed, object dirs of trees
// that are gone or unused, leftovers of killed builds and old failure logs;
// then it trims ccache to CcacheMaxSize. Entries another process holds
// locked are left alone.
func GC(ctx context.Context, opts GCOptions) (GCResult, error) {
	var r GCResult
	root, err := cacheRoot(opts.CacheDir)
	if err != nil {
		return r, err
	}
	current := map[string]string{} // key -> variant
	sources := map[string]bool{}   // sha16 of current tarballs
	for _, v := range Variants() {
		if v.Prebuilt != "" {
			continue
		}
		p, err := planBuild(ctx, BuildOptions{Variant: v.Name, CacheDir: root})
		if err != nil {
			// Its source is not installed: nothing current to keep for it.
			r.UnavailableVariants = append(r.UnavailableVariants, v.Name+": "+firstLine(err.Error()))
			continue
		}
		current[p.key] = v.Name
		sources[p.tarSum[:16]] = true
	}
	cutoff := time.Now().Add(-opts.Keep)
	before := freeBytes(root)
	decide := func(path, what string, remove bool, why string, lockPath string) {
		it := GCItem{Path: path, What: what, Why: why, Bytes: ownBytes(path)}
		if !remove {
			r.Kept = append(r.Kept, it)
			return
		}
		if lockPath != "" && !opts.DryRun { // a dry run must not even create lock files
			l, ok := tryLock(lockPath)
			if !ok {
				it.Why = "in use by another yank process"
				r.Kept = append(r.Kept, it)
				return
			}
			defer l.Unlock()
		}
		if !opts.DryRun {
			if err := os.RemoveAll(path); err != nil {
				it.Why += " (removal failed: " + err.Error() + ")"
				r.Kept = append(r.Kept, it)
				return
			}
			if lockPath != "" {
				os.Remove(lockPath)
			}
		}
		r.Removed = append(r.Removed, it)
	}

	kdir := filepath.Join(root, "kernels")
	ents, _ := os.ReadDir(kdir)
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return r, err
		}
		name, path := e.Name(), filepath.Join(kdir, e.Name())
		switch {
		case e.IsDir() && strings.HasPrefix(name, tmpPrefix):
			key := strings.TrimPrefix(name, tmpPrefix)
			if i := strings.LastIndexByte(key, '-'); i > 0 {
				key = key[:i]
			}
			decide(path, "unfinished build", true, "left by a killed build", filepath.Join(kdir, key+".lock"))
		case e.IsDir():
			m, err := readMeta(path)
			what := "kernel " + name
			if err == nil {
				what = fmt.Sprintf("kernel %s (%s)", m.Variant, m.Release)
			}
			used := lastUsed(path, m)
			switch v, ok := current[name]; {
			case ok:
				decide(path, what, false, "current build of variant "+v, "")
			case err == nil && used.After(cutoff):
				decide(path, what, false, "used "+ago(used), "")
			case err != nil:
				decide(path, what, true, "incomplete entry (no meta.json)", filepath.Join(kdir, name+".lock"))
			default:
				decide(path, what, true, "no current variant builds it; last used "+ago(used), filepath.Join(kdir, name+".lock"))
			}
		case strings.HasSuffix(name, ".failed.log"):
			if st, err := e.Info(); err == nil && st.ModTime().Before(cutoff) {
				decide(path, "log of a failed build", true, "from "+ago(st.ModTime()), "")
			}
		case strings.HasSuffix(name, ".lock"):
			key := strings.TrimSuffix(name, ".lock")
			if !exists(filepath.Join(kdir, key)) && !hasTmp(ents, key) {
				decide(path, "lock of a removed entry", true, "its entry is gone", "")
			}
		}
	}

	for path, name := range subdirs(filepath.Join(root, "src")) {
		if strings.HasPrefix(name, tmpPrefix) {
			decide(path, "unfinished unpack", true, "left by a killed unpack", "")
			continue
		}
		if sources[name] {
			decide(path, "unpacked source "+name, false, "a current source tarball", "")
		} else {
			decide(path, "unpacked source "+name, true, "no installed source tarball has this content", path+".lock")
		}
	}

	for path := range subdirs(filepath.Join(root, "trees")) {
		b, _ := os.ReadFile(filepath.Join(path, "tree"))
		tree := strings.TrimSpace(string(b))
		st, err := os.Stat(filepath.Join(path, "tree"))
		switch {
		case tree == "" || err != nil:
			decide(path, "tree objects", true, "no record of its tree", path+".lock")
		case !exists(filepath.Join(tree, "Makefile")):
			decide(path, "objects of tree "+tree, true, "the tree is gone", path+".lock")
		case st.ModTime().Before(cutoff):
			decide(path, "objects of tree "+tree, true, "last built "+ago(st.ModTime()), path+".lock")
		default:
			decide(path, "objects of tree "+tree, false, "built "+ago(st.ModTime()), "")
		}
	}

	r.CcacheMax = CcacheMaxSize()
	cdir := filepath.Join(root, "ccache")
	r.CcacheBefore = ownBytes(cdir)
	if !opts.DryRun && exists(cdir) && hasCcache() {
		env := append(os.Environ(), "CCACHE_DIR="+cdir)
		if err := run(ctx, "", env, io.Discard, "ccache", "--max-size", r.CcacheMax); err != nil {
			return r, fmt.Errorf("ccache --max-size: %w", err)
		}
		if err := run(ctx, "", env, io.Discard, "ccache", "--cleanup"); err != nil {
			return r, fmt.Errorf("ccache --cleanup: %w", err)
		}
	}
	r.CcacheAfter = ownBytes(cdir)
	if !opts.DryRun {
		r.Freed = max(0, freeBytes(root)-before)
	}
	slices.SortFunc(r.Removed, func(a, b GCItem) int { return strings.Compare(a.Path, b.Path) })
	return r, nil
}

// subdirs yields the path and name of each directory in dir.
func subdirs(dir string) iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.IsDir() && !yield(filepath.Join(dir, e.Name()), e.Name()) {
				return
			}
		}
	}
}

func hasTmp(ents []fs.DirEntry, key string) bool {
	return slices.ContainsFunc(ents, func(e fs.DirEntry) bool { return strings.HasPrefix(e.Name(), tmpPrefix+key+"-") })
}

// ownBytes is the disk space of path's files not hard-linked from
// elsewhere, i.e. roughly what removing path alone would free.
func ownBytes(path string) int64 {
	var n int64
	filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if st, err := os.Lstat(p); err == nil {
			if s, ok := st.Sys().(*syscall.Stat_t); ok && s.Nlink <= 1 {
				n += s.Blocks * 512
			}
		}
		return nil
	})
	return n
}

func freeBytes(path string) int64 {
	var s syscall.Statfs_t
	if syscall.Statfs(path, &s) != nil {
		return 0
	}
	return int64(s.Bavail) * int64(s.Bsize)
}

func ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
