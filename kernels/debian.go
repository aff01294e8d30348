package kernels

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// debianRoot is "/" except in tests.
var debianRoot = "/"

// Debian returns Debian's packaged kernel: the newest /boot/vmlinuz-<rel>
// whose /lib/modules/<rel> exists. Nothing is built; the image needs the
// modules (virtio drivers are modules there) in its initramfs.
func Debian() (Artifact, error) {
	boot := filepath.Join(debianRoot, "boot")
	matches, _ := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	var rels []string
	for _, m := range matches {
		rel := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		if exists(filepath.Join(debianRoot, "lib/modules", rel, "modules.dep")) {
			rels = append(rels, rel)
		}
	}
	if len(rels) == 0 {
		return Artifact{}, errors.New("no Debian kernel (/boot/vmlinuz-<release> with /lib/modules/<release>): install it with `apt-get install linux-image-amd64`")
	}
	sort.Slice(rels, func(i, j int) bool { return versionLess(rels[i], rels[j]) })
	rel := rels[len(rels)-1]
	a := Artifact{
		Variant:    "debian",
		Key:        "debian-" + rel,
		BzImage:    filepath.Join(boot, "vmlinuz-"+rel),
		Config:     filepath.Join(boot, "config-"+rel),
		ModulesDir: filepath.Join(debianRoot, "lib/modules", rel),
		Release:    rel,
		Cached:     true,
	}
	if f, err := os.Open(a.BzImage); err != nil {
		return Artifact{}, fmt.Errorf("Debian kernel %s not readable: %w", a.BzImage, err)
	} else {
		f.Close()
	}
	if !exists(a.Config) {
		a.Config = ""
	}
	return a, nil
}

// versionLess orders "6.1.0-9-amd64" before "6.1.0-56-amd64" by comparing
// digit runs numerically.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, ra := leadingNum(a)
		db, rb := leadingNum(b)
		if da != "" && db != "" {
			if len(strings.TrimLeft(da, "0")) != len(strings.TrimLeft(db, "0")) {
				return len(strings.TrimLeft(da, "0")) < len(strings.TrimLeft(db, "0"))
			}
			if da != db {
				return strings.TrimLeft(da, "0") < strings.TrimLeft(db, "0")
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func leadingNum(s string) (num, rest string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}
