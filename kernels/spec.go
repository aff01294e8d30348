package kernels

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// SpecSyntax is the one-paragraph description every command's help uses.
const SpecSyntax = `a kernel is VARIANT (yank kernel list), a bzImage path, a kernel tree
directory, or BASE+SERIES[+SERIES...] (a variant plus patch series: .patch/.diff
files, directories of git format-patch files, mboxes); NAME=SPEC labels any of them`

// Spec is a kernel as a user names it on any command line (see SpecSyntax).
// Exactly one of BzImage, Tree and Variant is the kernel; Series adds
// patches on top of Variant.
type Spec struct {
	Name    string   // label in tables, artifact paths, reports and Ginkgo labels
	Text    string   // as given
	Variant string   // a variant, or the base of Series
	Series  []string // absolute paths of the series, in order
	BzImage string   // absolute path of a prebuilt bzImage
	Tree    string   // absolute path of a kernel source tree

	patches []Patch // Series, loaded
}

// ParseSpec reads one kernel spec. It checks that variants exist and that
// paths and series can be read; whether a series applies is Check's job.
func ParseSpec(text string) (Spec, error) {
	s := Spec{Text: strings.TrimSpace(text)}
	body := s.Text
	if name, rest, ok := strings.Cut(body, "="); ok && !strings.ContainsAny(name, "/+") {
		name = strings.TrimSpace(name)
		if !plainWord(name) {
			return s, fmt.Errorf("kernel %q: the name before = must be a plain word (letters, digits, . _ - +)", text)
		}
		s.Name, body = name, strings.TrimSpace(rest)
	}
	if body == "" {
		return s, fmt.Errorf("kernel %q: empty; %s", text, SpecSyntax)
	}
	if st, err := os.Stat(body); err == nil && (strings.ContainsRune(body, '/') || st.IsDir() || !strings.Contains(body, "+")) && !isVariantName(body) {
		abs, err := filepath.Abs(body)
		if err != nil {
			return s, err
		}
		if st.IsDir() {
			if !exists(filepath.Join(abs, "Makefile")) || !exists(filepath.Join(abs, "Kconfig")) {
				return s, fmt.Errorf("kernel %q: %s is a directory but not a kernel tree (no Makefile and Kconfig); to apply it as a patch series write BASE+%s, e.g. stock+%s", text, abs, body, body)
			}
			s.Tree = abs
		} else {
			if _, err := BzImageVersion(abs); err != nil {
				return s, fmt.Errorf("kernel %q: %v; give a bzImage (arch/x86/boot/bzImage), or to apply a patch write BASE+%s, e.g. stock+%s", text, err, body, body)
			}
			s.BzImage = abs
		}
		s.Name = cmp.Or(s.Name, pathLabel(abs))
		return s, nil
	}
	parts := strings.Split(body, "+")
	base := strings.TrimSpace(parts[0])
	if strings.ContainsRune(base, '/') {
		if len(parts) == 1 {
			return s, fmt.Errorf("kernel %q: %s: no such file or directory; %s", text, base, SpecSyntax)
		}
		return s, fmt.Errorf("kernel %q: the part before + must be a variant to build on (one of %s), not the path %s", text, strings.Join(builtVariantNames(), ", "), base)
	}
	v, err := FindVariant(base)
	if err != nil {
		return s, fmt.Errorf("kernel %q: %w", text, err)
	}
	s.Variant = v.Name
	if len(parts) == 1 {
		s.Name = cmp.Or(s.Name, v.Name)
		return s, nil
	}
	if v.Prebuilt != "" {
		return s, fmt.Errorf("kernel %q: %s is prebuilt: a series needs a base yank builds (one of %s)", text, v.Name, strings.Join(builtVariantNames(), ", "))
	}
	var stems []string
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			return s, fmt.Errorf("kernel %q: empty series between +", text)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return s, err
		}
		s.Series = append(s.Series, abs)
		stems = append(stems, seriesStem(abs))
	}
	// Owner is filled in below once the name is known.
	name := cmp.Or(s.Name, v.Name+"+"+strings.Join(stems, "+"))
	for _, p := range s.Series {
		ps, err := LoadSeries(p, name)
		if err != nil {
			return s, fmt.Errorf("kernel %q: %w", text, err)
		}
		s.patches = append(s.patches, ps...)
	}
	if s.Name == "" {
		s.Name = name
		if !plainWord(name) {
			// Long or odd file names: a short name that stays the same for
			// the same series.
			h := sha256.New()
			for _, p := range s.patches {
				h.Write([]byte(p.SHA256()))
			}
			s.Name = v.Name + "+series-" + hex.EncodeToString(h.Sum(nil))[:8]
		}
	}
	return s, nil
}

func isVariantName(s string) bool {
	_, err := FindVariant(s)
	return err == nil
}

// ParseSpecs reads a comma-separated list of specs; names must be unique.
func ParseSpecs(list string) ([]Spec, error) {
	var out []Spec
	seen := map[string]string{}
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		s, err := ParseSpec(f)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[s.Name]; ok {
			return nil, fmt.Errorf("kernel name %s given twice (%q and %q): label one with NAME=SPEC", s.Name, prev, f)
		}
		seen[s.Name] = f
		out = append(out, s)
	}
	return out, nil
}

var seriesExt = regexp.MustCompile(`\.(patch|diff|mbox|mbx|eml|txt)$`)

func seriesStem(p string) string { return seriesExt.ReplaceAllString(filepath.Base(p), "") }

// pathLabel names a kernel given by path after the path, label-safe.
func pathLabel(abs string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("&|!,()/ :=", r) {
			return '_'
		}
		return r
	}, strings.TrimPrefix(abs, "/"))
}

// Kind says what the spec names: "variant", "series", "bzImage" or "tree".
func (s Spec) Kind() string {
	switch {
	case s.BzImage != "":
		return "bzImage"
	case s.Tree != "":
		return "tree"
	case len(s.Series) > 0:
		return "series"
	}
	return "variant"
}

// Patches are the series' patches (nil unless Kind is "series").
func (s Spec) Patches() []Patch { return s.patches }

// Version is the kernel's major.minor ("6.1", "6.12") as far as it is
// known without building: the variant's source, a tree's Makefile, or the
// version string in a bzImage's boot header; "" if none says.
func (s Spec) Version() string {
	switch {
	case s.BzImage != "":
		v, _ := BzImageVersion(s.BzImage)
		return shortVersion(v)
	case s.Tree != "":
		return treeVersion(s.Tree)
	}
	v, err := FindVariant(s.Variant)
	if err != nil {
		return ""
	}
	if v.Prebuilt == "debian" {
		if a, err := Debian(); err == nil {
			return shortVersion(a.Release)
		}
		return ""
	}
	return v.Version()
}

// Options are what Build needs for this spec.
func (s Spec) Options(cacheDir string, progress io.Writer) BuildOptions {
	o := BuildOptions{Variant: s.Variant, Tree: s.Tree, Series: s.patches, CacheDir: cacheDir, Progress: progress}
	if len(s.patches) > 0 {
		o.Name = s.Name
	}
	return o
}

// Check fails fast on what would fail a build later: a series that does
// not apply to its base (the error names the file, the mail's subject and
// the hunk). It builds nothing.
func (s Spec) Check(ctx context.Context, cacheDir string) error {
	if len(s.patches) == 0 {
		return nil
	}
	p, err := planBuild(ctx, s.Options(cacheDir, nil))
	if err != nil {
		return fmt.Errorf("kernel %s: %w", s.Name, err)
	}
	if err := p.checkSeries(ctx, nil); err != nil {
		return fmt.Errorf("kernel %s: %w", s.Name, err)
	}
	return nil
}

// Resolve returns the bootable kernel: a bzImage as is, a tree or variant
// built (or found in the cache), a series built incrementally on its base.
func (s Spec) Resolve(ctx context.Context, cacheDir string, progress io.Writer) (Artifact, error) {
	if s.BzImage != "" {
		return Artifact{Variant: s.Name, Key: "path:" + s.BzImage, BzImage: s.BzImage, Cached: true}, nil
	}
	return Build(ctx, s.Options(cacheDir, progress))
}

// Resolve turns what a user names as a kernel (any Spec) into an Artifact,
// building it if needed with progress on w.
func Resolve(ctx context.Context, spec string, w io.Writer) (Artifact, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return Artifact{}, err
	}
	return s.Resolve(ctx, "", w)
}

// BzImageVersion reads the kernel version string from a bzImage's boot
// header (the kernel_version field of the x86 boot protocol, 2.00+): the
// release, e.g. "6.1.192".
func BzImageVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s: not a bzImage (no HdrS boot header)", path)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
	buf := make([]byte, 128)
	n, _ := f.ReadAt(buf, off)
	str, _, _ := strings.Cut(string(buf[:n]), " ")
	if str == "" {
		return "", fmt.Errorf("%s: empty kernel version string", path)
	}
	return str, nil
}

var makeVar = regexp.MustCompile(`(?m)^(VERSION|PATCHLEVEL) = (\d+)$`)

func treeVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return ""
	}
	var ver, patch string
	for _, m := range makeVar.FindAllStringSubmatch(string(b), 2) {
		if m[1] == "VERSION" {
			ver = m[2]
		} else {
			patch = m[2]
		}
	}
	if ver == "" || patch == "" {
		return ""
	}
	return ver + "." + patch
}

// shortVersion turns a release ("6.12.117", "6.1.0-28-amd64") into
// major.minor.
func shortVersion(release string) string {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return ""
	}
	minor := parts[1]
	if i := strings.IndexFunc(minor, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = minor[:i]
	}
	return parts[0] + "." + minor
}

// ParsePatches reads a patches argument for a tree build (bisect-run
// -patches): a variant whose whole series is applied, series paths joined
// by +, or a variant followed by +SERIES.
func ParsePatches(text string) (variant string, series []Patch, err error) {
	parts := strings.Split(strings.TrimSpace(text), "+")
	if len(parts) > 0 && isVariantName(strings.TrimSpace(parts[0])) {
		variant, parts = strings.TrimSpace(parts[0]), parts[1:]
		if v, _ := FindVariant(variant); v.Prebuilt != "" {
			return "", nil, fmt.Errorf("patches %q: %s is a prebuilt kernel, it has no patches", text, variant)
		}
	}
	for _, p := range parts {
		if p = strings.TrimSpace(p); p == "" {
			return "", nil, fmt.Errorf("patches %q: empty part between +", text)
		}
		ps, err := LoadSeries(p, "patches")
		if err != nil {
			if !strings.ContainsAny(p, "/.") {
				return "", nil, fmt.Errorf("patches %q: %s is neither a variant (%s) nor a series file or directory", text, p, strings.Join(builtVariantNames(), ", "))
			}
			return "", nil, fmt.Errorf("patches %q: %w", text, err)
		}
		series = append(series, ps...)
	}
	return variant, series, nil
}
