package images

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// modulesList is the guest file /init reads: one absolute module path per
// line, dependencies before the modules that need them.
const modulesList = "/etc/yank/modules"

// moduleDB is what modules.dep and modules.builtin say about one kernel.
type moduleDB struct {
	dir     string              // host /lib/modules/<release>
	path    map[string]string   // module name -> path relative to dir
	deps    map[string][]string // module name -> names it needs
	builtin map[string]bool     // modules built into the kernel
}

// moduleName turns "kernel/drivers/virtio/virtio-pci.ko.xz" or "virtio-pci"
// into "virtio_pci": the kernel treats '-' and '_' alike in module names.
func moduleName(s string) string {
	s = path.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

func loadModuleDB(dir string) (*moduleDB, error) {
	db := &moduleDB{dir: dir, path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("images: modules dir %s: %w (run depmod, or pass the /lib/modules/<release> of the kernel you boot)", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		mod, deps, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(mod)
		db.path[name] = mod
		for _, d := range strings.Fields(deps) {
			db.deps[name] = append(db.deps[name], moduleName(d))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// modules.builtin is optional: without it a built-in module is "unknown".
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			db.builtin[moduleName(l)] = true
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return db, nil
}

// order returns the modules to load for names, dependencies first, each
// once. Built-in modules are skipped: they are already in the kernel.
func (db *moduleDB) order(names []string) ([]string, error) {
	var out []string
	done := map[string]bool{}
	var visit func(n string, stack []string) error
	visit = func(n string, stack []string) error {
		if done[n] {
			return nil
		}
		for _, s := range stack {
			if s == n {
				return fmt.Errorf("images: module dependency cycle: %s -> %s", strings.Join(stack, " -> "), n)
			}
		}
		for _, d := range db.deps[n] {
			if err := visit(d, append(stack, n)); err != nil {
				return err
			}
		}
		done[n] = true
		out = append(out, n)
		return nil
	}
	for _, raw := range names {
		n := moduleName(raw)
		if _, ok := db.path[n]; !ok {
			if db.builtin[n] {
				continue
			}
			return nil, db.unknown(raw)
		}
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (db *moduleDB) unknown(name string) error {
	n := moduleName(name)
	var near []string
	for m := range db.path {
		if strings.Contains(m, n) || (len(m) > 3 && strings.Contains(n, m)) {
			near = append(near, m)
		}
	}
	slices.Sort(near)
	if len(near) > 10 {
		near = append(near[:10], "...")
	}
	hint := ""
	if len(near) > 0 {
		hint = "; similar: " + strings.Join(near, ", ")
	}
	return fmt.Errorf("images: unknown module %q: not in %s/modules.dep (list them with: find %s -name '*.ko*')%s",
		name, db.dir, db.dir, hint)
}

// addModules copies the modules (and their dependencies) into the guest's
// /lib/modules/<release> and writes the load-order list for /init.
func (t *tree) addModules(dir string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	db, err := loadModuleDB(dir)
	if err != nil {
		return err
	}
	ordered, err := db.order(names)
	if err != nil {
		return err
	}
	guestDir := path.Join("/lib/modules", filepath.Base(filepath.Clean(dir)))
	var list strings.Builder
	for _, n := range ordered {
		rel := db.path[n]
		src := filepath.Join(dir, rel)
		data, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("images: module %s listed in modules.dep: %w", n, err)
		}
		dst := path.Join(guestDir, rel)
		if err := t.file(dst, 0o644, data, src); err != nil {
			return err
		}
		fmt.Fprintln(&list, dst)
	}
	return t.file(modulesList, 0o644, []byte(list.String()), "module load order")
}
