package kernels

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// The manifest, patch series and config fragment are compiled into the
// binary so a yank build is self-contained and the cache key covers exactly
// what the binary will apply.
//
//go:embed variants.json config/yank.config patches
var embedded embed.FS

// Source is a kernel source tarball a root variant is built from.
type Source struct {
	Name       string `json:"name"`        // short version, e.g. "6.12"; used in labels
	Tarball    string `json:"tarball"`     // absolute path
	AptPackage string `json:"apt_package"` // the Debian package that installs Tarball
}

// Variant is one kernel flavour from variants.json or a user's variants
// file.
type Variant struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Base names the variant this one extends: its patches are applied
	// after the base's, and a cached base build is reused incrementally.
	Base string `json:"base,omitempty"`
	// Source names the tarball a variant without a base is built from; a
	// variant with a base inherits the base's (and may not name another).
	Source string `json:"source,omitempty"`
	// Prebuilt is "debian" for a distribution kernel that yank never builds.
	Prebuilt string `json:"prebuilt,omitempty"`
	// Series lists this variant's own patches as series (see LoadSeries:
	// .patch/.diff files, directories of them, mboxes), relative to the
	// variants file. Without it the series is patches/<name>/ next to the
	// file, if that exists (the layout of the built-in variants).
	Series []string `json:"series,omitempty"`

	// Patches are this variant's own patches (not the base's), loaded.
	Patches []Patch `json:"-"`
	// File is the variants file that declared it ("" = built in).
	File string `json:"-"`
}

// Version is the short source version ("6.1", "6.12") the variant builds,
// "" for a prebuilt kernel.
func (v Variant) Version() string { return v.Source }

type manifest struct {
	Sources  []Source  `json:"sources"`
	Variants []Variant `json:"variants"`
}

// DefaultVariantsFile is the user variants file yank reads from the working
// directory when no -variants flag names one.
const DefaultVariantsFile = "yank-variants.json"

var (
	userMu    sync.Mutex
	userFile  string   // "" = none
	userCache *catalog // the merged catalog, rebuilt when userFile changes
)

// UseVariantsFile adds the variants of a user's variants file (the schema of
// kernels/variants.json) to the built-in ones for the rest of the process.
// An empty path means DefaultVariantsFile if the working directory has one.
// It returns the file in use ("" for none); errors name the file and field.
func UseVariantsFile(file string) (string, error) {
	if file == "" {
		if _, err := os.Stat(DefaultVariantsFile); err != nil {
			userMu.Lock()
			userFile, userCache = "", nil
			userMu.Unlock()
			return "", nil
		}
		file = DefaultVariantsFile
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", err
	}
	c, err := buildCatalog(abs)
	if err != nil {
		return "", err
	}
	userMu.Lock()
	userFile, userCache = abs, c
	userMu.Unlock()
	return abs, nil
}

// catalog is the built-in manifest merged with the user file's.
type catalog struct {
	sources  []Source
	variants []Variant
}

func buildCatalog(user string) (*catalog, error) {
	var c catalog
	b, err := embedded.ReadFile("variants.json")
	if err != nil {
		return nil, err
	}
	if err := c.add(b, "", embeddedPatches); err != nil {
		return nil, err
	}
	if user != "" {
		b, err := os.ReadFile(user)
		if err != nil {
			return nil, fmt.Errorf("variants file %s: %w", user, err)
		}
		if err := c.add(b, user, userPatches(user)); err != nil {
			return nil, err
		}
	}
	return &c, c.resolveSources()
}

// add merges one file's sources and variants; file is "" for the built-in
// manifest. load reads a variant's own patches.
func (c *catalog) add(data []byte, file string, load func(Variant) ([]Patch, error)) error {
	where := "kernels/variants.json (built in)"
	if file != "" {
		where = "variants file " + file
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var m manifest
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("%s: %w (schema: {\"sources\": [...], \"variants\": [{\"name\", \"base\", \"series\", \"description\"}]})", where, err)
	}
	for _, s := range m.Sources {
		switch {
		case s.Name == "" || s.Tarball == "":
			return fmt.Errorf("%s: a source needs \"name\" and \"tarball\"", where)
		case c.source(s.Name) != nil:
			return fmt.Errorf("%s: source %q is already defined", where, s.Name)
		case !filepath.IsAbs(s.Tarball):
			return fmt.Errorf("%s: source %q: tarball %q must be an absolute path", where, s.Name, s.Tarball)
		}
		c.sources = append(c.sources, s)
	}
	for _, v := range m.Variants {
		v.File = file
		switch {
		case !plainWord(v.Name) || strings.Contains(v.Name, "+"):
			return fmt.Errorf("%s: variant name %q: want a plain word (letters, digits, . _ -)", where, v.Name)
		case c.variant(v.Name) != nil:
			return fmt.Errorf("%s: variant %q is already defined (built-in variants cannot be redefined; pick another name)", where, v.Name)
		case v.Prebuilt != "" && (v.Base != "" || len(v.Series) > 0):
			return fmt.Errorf("%s: variant %q: a prebuilt kernel has no base or series", where, v.Name)
		case v.Base != "" && v.Source != "":
			return fmt.Errorf("%s: variant %q: \"source\" is inherited from base %q; leave it out", where, v.Name, v.Base)
		case v.Base == "" && v.Prebuilt == "" && v.Source == "":
			return fmt.Errorf("%s: variant %q: name a \"base\" variant or a \"source\" (known sources: %s)", where, v.Name, strings.Join(c.sourceNames(), ", "))
		}
		ps, err := load(v)
		if err != nil {
			return fmt.Errorf("%s: variant %q: %w", where, v.Name, err)
		}
		if file == "" && v.Base != "" && len(ps) == 0 {
			// A built-in variant with a base exists for its patches: an
			// empty patches/<name>/ would silently build the base again.
			return fmt.Errorf("%s: variant %q has no patches in kernels/patches/%s/", where, v.Name, v.Name)
		}
		v.Patches = ps
		c.variants = append(c.variants, v)
	}
	return nil
}

// resolveSources checks every base and source name and lets variants
// inherit their base's source.
func (c *catalog) resolveSources() error {
	for i := range c.variants {
		v := &c.variants[i]
		vs, err := c.chain(v.Name)
		if err != nil {
			return err
		}
		root := vs[0]
		if root.Prebuilt != "" {
			continue
		}
		if c.source(root.Source) == nil {
			return fmt.Errorf("%s: variant %q: unknown source %q (known: %s)", fileOrBuiltin(root.File), root.Name, root.Source, strings.Join(c.sourceNames(), ", "))
		}
		v.Source = root.Source
	}
	return nil
}

func fileOrBuiltin(f string) string {
	if f == "" {
		return "kernels/variants.json (built in)"
	}
	return "variants file " + f
}

func (c *catalog) source(name string) *Source   { return named(c.sources, name, Source.name) }
func (c *catalog) sourceNames() []string        { return namesOf(c.sources, Source.name) }
func (c *catalog) variant(name string) *Variant { return named(c.variants, name, Variant.name) }
func (c *catalog) names() []string              { return namesOf(c.variants, Variant.name) }
func (s Source) name() string                   { return s.Name }
func (v Variant) name() string                  { return v.Name }

// named returns the item of items called name, or nil.
func named[T any](items []T, name string, nameOf func(T) string) *T {
	if i := slices.IndexFunc(items, func(x T) bool { return nameOf(x) == name }); i >= 0 {
		return &items[i]
	}
	return nil
}

// namesOf lists the items' names, in order.
func namesOf[T any](items []T, nameOf func(T) string) []string {
	var out []string
	for _, x := range items {
		out = append(out, nameOf(x))
	}
	return out
}

// find returns the named variant or an error listing the known ones.
func (c *catalog) find(name string) (Variant, error) {
	if v := c.variant(name); v != nil {
		return *v, nil
	}
	return Variant{}, fmt.Errorf("kernels: unknown variant %q (known: %s)", name, strings.Join(c.names(), ", "))
}

// chain returns the variant and its bases, root first.
func (c *catalog) chain(name string) ([]Variant, error) {
	var out []Variant
	seen := map[string]bool{}
	for name != "" {
		if seen[name] {
			return nil, fmt.Errorf("kernels: variant base cycle at %q", name)
		}
		seen[name] = true
		v, err := c.find(name)
		if err != nil {
			if len(out) > 0 {
				return nil, fmt.Errorf("%s: variant %q: base: %w", fileOrBuiltin(out[0].File), out[0].Name, err)
			}
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

// embeddedPatches reads patches/<name>/*.patch from the binary.
func embeddedPatches(v Variant) ([]Patch, error) {
	if len(v.Series) > 0 {
		return nil, errors.New("built-in variants keep their series in patches/<name>/, not in \"series\"")
	}
	dir := path.Join("patches", v.Name)
	var out []Patch
	for _, p := range patchFiles(embedded, dir) {
		b, err := embedded.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, Patch{Name: path.Base(p), Variant: v.Name, Source: path.Join(v.Name, path.Base(p)), Subject: subjectOf(b), Data: b})
	}
	return out, nil
}

// userPatches reads a user variant's series relative to its file.
func userPatches(file string) func(Variant) ([]Patch, error) {
	dir := filepath.Dir(file)
	return func(v Variant) ([]Patch, error) {
		series := v.Series
		if len(series) == 0 {
			d := filepath.Join(dir, "patches", v.Name)
			if _, err := os.Stat(d); err != nil {
				return nil, nil // no patches of its own: a plain alias of its base
			}
			series = []string{d}
		}
		var out []Patch
		for _, s := range series {
			if !filepath.IsAbs(s) {
				s = filepath.Join(dir, s)
			}
			ps, err := LoadSeries(s, v.Name)
			if err != nil {
				return nil, fmt.Errorf("series: %w", err)
			}
			out = append(out, ps...)
		}
		return out, nil
	}
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
	slices.Sort(out)
	return out
}

// Patch is one patch of a series.
type Patch struct {
	Name    string // file name (or <mbox>#<n>), part of the cache key
	Variant string // variant (or kernel spec) that owns it
	Source  string // where it came from, for errors: a path, or variant/file for built-ins
	Subject string // the mail's Subject:, "" for a plain diff
	Data    []byte
}

// SHA256 returns the hex digest of the patch contents.
func (p Patch) SHA256() string {
	return sha256Hex(p.Data)
}

// where names the patch in errors and logs.
func (p Patch) where() string {
	if p.Source != "" {
		return p.Source
	}
	return p.Variant + "/" + p.Name
}

// current returns the catalog in use: built-in plus the user file, if any.
func current() (*catalog, error) {
	userMu.Lock()
	defer userMu.Unlock()
	if userCache != nil {
		return userCache, nil
	}
	return buildCatalog("")
}

// Variants returns every known variant: built-in, then the user file's.
func Variants() []Variant {
	c, err := current()
	if err != nil {
		return nil
	}
	return c.variants
}

// FindVariant returns the named variant.
func FindVariant(name string) (Variant, error) {
	c, err := current()
	if err != nil {
		return Variant{}, err
	}
	return c.find(name)
}

// SourceFor returns the tarball the variant builds from.
func SourceFor(v Variant) (Source, error) {
	c, err := current()
	if err != nil {
		return Source{}, err
	}
	if s := c.source(v.Source); s != nil {
		return *s, nil
	}
	return Source{}, fmt.Errorf("kernels: variant %q has no source (prebuilt?)", v.Name)
}

// chain returns the variant and its bases, root first.
func chain(name string) ([]Variant, error) {
	c, err := current()
	if err != nil {
		return nil, err
	}
	return c.chain(name)
}

// seriesFor returns every patch of the variant's chain, base patches first.
func seriesFor(name string) ([]Patch, error) {
	vs, err := chain(name)
	if err != nil {
		return nil, err
	}
	var out []Patch
	for _, v := range vs {
		out = append(out, v.Patches...)
	}
	return out, nil
}

// Fragment returns the embedded config fragment (kernels/config/yank.config).
func Fragment() []byte {
	b, _ := embedded.ReadFile("config/yank.config")
	return b
}

// plainWord is what a kernel or variant name may be: it ends up in file
// names, Ginkgo labels and report rows.
func plainWord(s string) bool {
	if s == "" || len(s) > 64 || strings.HasPrefix(s, ".") || strings.HasPrefix(s, "-") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+", r)) {
			return false
		}
	}
	return true
}
