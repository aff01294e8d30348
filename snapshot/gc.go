package snapshot

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/yank-dev/yank/kernels"
)

// GC removes the entries whose kernel or image is gone (nothing could
// restore them), those unused for keep, and leftovers of killed makers;
// entries being made or removed (locked) stay. Items use the kernel GC's
// shape, so `yank kernel gc` reports both together.
func (s *Store) GC(keep time.Duration, dryRun bool) (removed, kept []kernels.GCItem) {
	entries, _ := os.ReadDir(s.Dir)
	for _, de := range entries {
		name := de.Name()
		if strings.HasSuffix(name, ".lock") {
			continue
		}
		key, _, tmp := strings.Cut(name, ".tmp-")
		l, ok := kernels.TryLock(filepath.Join(s.Dir, key) + ".lock")
		if !ok {
			continue
		}
		dir := filepath.Join(s.Dir, name)
		it := kernels.GCItem{Path: dir, What: "snapshot", Bytes: dirBytes(dir)}
		e, valid := s.lookup(dir)
		switch {
		case tmp:
			it.Why = "left by a maker that did not finish"
		case !valid:
			it.Why = "damaged (no readable meta.json or state)"
		case missing(e.Meta.Kernel) || missing(e.Meta.Initrd):
			it.What += " of " + e.Meta.Kernel
			it.Why = "its kernel or guest image is gone"
		case lastUse(dir).Before(time.Now().Add(-keep)):
			it.What += " of " + e.Meta.Kernel
			it.Why = "unused since " + lastUse(dir).UTC().Format("2006-01-02")
		default:
			it.What += " of " + e.Meta.Kernel
			it.Why = "used " + lastUse(dir).UTC().Format("2006-01-02 15:04")
			kept = append(kept, it)
			l.Unlock()
			continue
		}
		if !dryRun {
			os.RemoveAll(dir)
			if !tmp {
				os.Remove(filepath.Join(s.Dir, key) + ".lock")
			}
		}
		removed = append(removed, it)
		l.Unlock()
	}
	return removed, kept
}

func missing(path string) bool {
	_, err := os.Stat(path)
	return err != nil
}

func lastUse(dir string) time.Time {
	if st, err := os.Stat(filepath.Join(dir, usedFile)); err == nil {
		return st.ModTime()
	}
	if st, err := os.Stat(dir); err == nil {
		return st.ModTime()
	}
	return time.Time{}
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
