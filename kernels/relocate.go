package kernels

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// relocateObjDir makes a copied object dir usable at its new place.
//
// Kbuild proper uses relative paths (srctree := ..), but tools/objtool is
// built by the tools build system with absolute ones: its .cmd and .d files
// name sources under the base build's temp dir
// (<kernels>/.tmp-<baseKey>-<rand>/src), which is gone. make would take
// the missing prerequisites as changed, relink objtool, and since every
// kernel object depends on the objtool binary, rebuild everything. So
// rewrite those paths to newSrc in the dependency files (text only: *.cmd,
// *.d), keeping their mtimes. Any directory prefix is accepted, so an entry
// copied from another cache root relocates too. Returns the number of files
// rewritten.
func relocateObjDir(obj, baseKey, newSrc string) (int, error) {
	old := regexp.MustCompile(`/[^\s:\\'"=]*?/` + regexp.QuoteMeta(tmpPrefix+baseKey+"-") + `[0-9a-f]+/src\b`)
	n := 0
	err := filepath.WalkDir(obj, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		if !strings.HasSuffix(name, ".cmd") && !strings.HasSuffix(name, ".d") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if !old.Match(data) {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		out := old.ReplaceAllLiteral(data, []byte(newSrc))
		if err := os.WriteFile(p, out, st.Mode().Perm()); err != nil {
			return err
		}
		n++
		return os.Chtimes(p, st.ModTime(), st.ModTime())
	})
	return n, err
}
