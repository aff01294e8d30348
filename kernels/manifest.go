package kernels

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The manifest, patch series and config fragment are compiled into the
// binary so a yank build is self-contained and the cache key covers exactly
// what the binary will apply.
//
//go:embed variants.json config/yank.config patches
var embedded embed.FS

// Variant is one kernel flavour from variants.json.
type Variant struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Base names the variant this one extends: its patches are applied
	// after the base's, and a cached base build is reused incrementally.
	Base string `json:"base,omitempty"`
	// Prebuilt is "debian" for a distribution kernel that yank never builds.
	Prebuilt string `json:"prebuilt,omitempty"`
	// Patches are this variant's own patch files (not the base's), in
	// application order, as paths inside the embedded patches/ directory.
	Patches []string `json:"-"`
}

type manifest struct {
	Source struct {
		Tarball    string `json:"tarball"`
		AptPackage string `json:"apt_package"`
	} `json:"source"`
	Variants []Variant `json:"variants"`
}

// Patch is one patch file of a series.
type Patch struct {
	Name    string // file name, e.g. 0001-pci-report-surprise-removal-event.patch
	Variant string // variant that owns it
	Data    []byte
}

// SHA256 returns the hex digest of the patch contents.
func (p Patch) SHA256() string {
	s := sha256.Sum256(p.Data)
	return hex.EncodeToString(s[:])
}

func loadManifest() (manifest, error) {
	var m manifest
	b, err := embedded.ReadFile("variants.json")
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("kernels: variants.json: %w", err)
	}
	seen := map[string]bool{}
	for i := range m.Variants {
		v := &m.Variants[i]
		if v.Name == "" || seen[v.Name] {
			return m, fmt.Errorf("kernels: variants.json: empty or duplicate variant name %q", v.Name)
		}
		seen[v.Name] = true
		v.Patches = patchFiles(embedded, path.Join("patches", v.Name))
	}
	return m, nil
}

// patchFiles lists dir/*.patch sorted by name; a missing dir means no patches.
func patchFiles(fsys fs.FS, dir string) []string {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".patch") {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// Variants returns the variants declared in the embedded manifest.
func Variants() []Variant {
	m, err := loadManifest()
	if err != nil {
		return nil
	}
	return m.Variants
}

// FindVariant returns the named variant.
func FindVariant(name string) (Variant, error) {
	m, err := loadManifest()
	if err != nil {
		return Variant{}, err
	}
	for _, v := range m.Variants {
		if v.Name == name {
			return v, nil
		}
	}
	var names []string
	for _, v := range m.Variants {
		names = append(names, v.Name)
	}
	return Variant{}, fmt.Errorf("kernels: unknown variant %q (known: %s)", name, strings.Join(names, ", "))
}

// chain returns the variant and its bases, root first.
func chain(name string) ([]Variant, error) {
	var out []Variant
	seen := map[string]bool{}
	for name != "" {
		if seen[name] {
			return nil, fmt.Errorf("kernels: variant base cycle at %q", name)
		}
		seen[name] = true
		v, err := FindVariant(name)
		if err != nil {
			return nil, err
		}
		if v.Prebuilt != "" && len(out) > 0 {
			return nil, fmt.Errorf("kernels: variant %q cannot be based on prebuilt %q", out[0].Name, v.Name)
		}
		out = append([]Variant{v}, out...)
		name = v.Base
	}
	return out, nil
}

// seriesFor returns every patch of the variant's chain, base patches first.
func seriesFor(name string) ([]Patch, error) {
	vs, err := chain(name)
	if err != nil {
		return nil, err
	}
	var out []Patch
	for _, v := range vs {
		for _, p := range v.Patches {
			b, err := embedded.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, Patch{Name: path.Base(p), Variant: v.Name, Data: b})
		}
	}
	return out, nil
}

// Fragment returns the embedded config fragment (kernels/config/yank.config).
func Fragment() []byte {
	b, _ := embedded.ReadFile("config/yank.config")
	return b
}
