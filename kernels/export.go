package kernels

// Export and import: built kernels shared between machines as one
// tarball, so a team's cold build happens once. An entry is taken in
// only where this machine computes the same cache key for its variant
// (same Debian source tarball, patches, config fragment, compiler and
// recipe) and its bzImage's boot header names the release it claims.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// exportFiles are what an entry needs to boot and be anchored (vmlinux
// holds the symbols): not the build tree under src/, so a variant built
// on an imported base is built cold.
var exportFiles = []string{"bzImage", "vmlinux", ".config", "build.log", "meta.json"}

// exportManifest is the tarball's first member.
const exportManifest = "yank-kernels.json"

type exportIndex struct {
	Format  int           `json:"format"`
	Entries []exportEntry `json:"entries"`
}

type exportEntry struct {
	Variant string            `json:"variant"`
	Key     string            `json:"key"`
	Release string            `json:"release"`
	SHA256  map[string]string `json:"sha256"` // file -> digest
}

// Export writes the cache entries of arts to w as a gzip'd tar.
func Export(ctx context.Context, w io.Writer, arts []Artifact) error {
	var idx exportIndex
	idx.Format = 1
	for _, a := range arts {
		if a.Dir == "" {
			return fmt.Errorf("kernels: %s is not a yank-built cache entry (Debian's kernel is installed by apt, not exported)", a.Variant)
		}
		m, err := readMeta(a.Dir)
		if err != nil {
			return fmt.Errorf("kernels: %s: %w", a.Dir, err)
		}
		if _, err := FindVariant(m.Variant); err != nil {
			return fmt.Errorf("kernels: %s was built from %s, not a variant: only variants can be exported (their key can be checked on the other machine); build it there", a.Dir, m.Variant)
		}
		e := exportEntry{Variant: m.Variant, Key: m.Key, Release: m.Release, SHA256: map[string]string{}}
		for _, f := range exportFiles {
			sum, err := fileSHA256(filepath.Join(a.Dir, f))
			if err != nil {
				return fmt.Errorf("kernels: %s: %w", a.Variant, err)
			}
			e.SHA256[f] = sum
		}
		idx.Entries = append(idx.Entries, e)
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	b, _ := json.MarshalIndent(idx, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: exportManifest, Mode: 0o644, Size: int64(len(b))}); err != nil {
		return err
	}
	if _, err := tw.Write(b); err != nil {
		return err
	}
	for i, e := range idx.Entries {
		for _, f := range exportFiles {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := addFile(tw, filepath.Join(arts[i].Dir, f), e.Key+"/"+f); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// Imported says what became of one entry of a tarball.
type Imported struct {
	Variant, Key, Release string
	Dir                   string // the cache entry
	Already               bool   // the cache had it
}

// Import installs the entries of an Export tarball into the cache under
// cacheDir ("" = the default). Every entry is checked before any is
// installed: file digests, the key this machine computes for its variant,
// and the bzImage's boot header. Nothing is installed if one fails.
func Import(ctx context.Context, r io.Reader, cacheDir string) ([]Imported, error) {
	root, err := cacheRoot(cacheDir)
	if err != nil {
		return nil, err
	}
	kdir := filepath.Join(root, "kernels")
	if err := mkdirPrivate(kdir); err != nil {
		return nil, err
	}
	// Unpacked as .tmp-import-* under import.lock, so a killed import's
	// leftovers are removed by the next build's cleanStale and a running
	// one's are not.
	il, err := lock(ctx, filepath.Join(kdir, "import.lock"))
	if err != nil {
		return nil, err
	}
	defer il.Unlock()
	tmp, err := os.MkdirTemp(kdir, tmpPrefix+"import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	idx, err := unpackExport(ctx, r, tmp)
	if err != nil {
		return nil, err
	}
	var out []Imported
	for _, e := range idx.Entries {
		if err := checkImport(ctx, tmp, e, cacheDir); err != nil {
			return nil, fmt.Errorf("kernels: import %s (key %s): %w", e.Variant, e.Key, err)
		}
		out = append(out, Imported{Variant: e.Variant, Key: e.Key, Release: e.Release, Dir: filepath.Join(kdir, e.Key)})
	}
	for i, e := range idx.Entries {
		if _, ok := artifactFromEntry(out[i].Dir); ok {
			out[i].Already = true
			continue
		}
		l, err := lock(ctx, filepath.Join(kdir, e.Key+".lock"))
		if err != nil {
			return nil, err
		}
		cleanStale(kdir, e.Key)
		err = os.Rename(filepath.Join(tmp, e.Key), out[i].Dir)
		l.Unlock()
		if err != nil {
			return nil, fmt.Errorf("kernels: installing %s: %w", e.Variant, err)
		}
		markUsed(out[i].Dir)
	}
	return out, nil
}

// unpackExport reads the tarball into dir, refusing members that are not
// the manifest or a listed entry's file.
func unpackExport(ctx context.Context, r io.Reader, dir string) (exportIndex, error) {
	var idx exportIndex
	gz, err := gzip.NewReader(r)
	if err != nil {
		return idx, fmt.Errorf("kernels: not a yank kernel export (gzip: %w)", err)
	}
	tr := tar.NewReader(gz)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != exportManifest {
		return idx, fmt.Errorf("kernels: not a yank kernel export: the first member must be %s", exportManifest)
	}
	if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&idx); err != nil {
		return idx, fmt.Errorf("kernels: %s: %w", exportManifest, err)
	}
	if idx.Format != 1 || len(idx.Entries) == 0 {
		return idx, fmt.Errorf("kernels: %s: format %d with %d entries; want format 1 with at least one (made by yank kernel export)", exportManifest, idx.Format, len(idx.Entries))
	}
	want := map[string]bool{}
	for _, e := range idx.Entries {
		if !validKey(e.Key) {
			return idx, fmt.Errorf("kernels: %s: %q is not a cache key", exportManifest, e.Key)
		}
		if err := os.Mkdir(filepath.Join(dir, e.Key), 0o700); err != nil {
			return idx, err
		}
		for _, f := range exportFiles {
			want[e.Key+"/"+f] = true
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return idx, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return idx, fmt.Errorf("kernels: reading the export: %w", err)
		}
		if !want[hdr.Name] || hdr.Typeflag != tar.TypeReg {
			return idx, fmt.Errorf("kernels: the export holds %q, which its manifest does not list", hdr.Name)
		}
		delete(want, hdr.Name)
		f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(hdr.Name)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return idx, err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return idx, fmt.Errorf("kernels: reading %s from the export: %w", hdr.Name, err)
		}
	}
	if len(want) > 0 {
		var missing []string
		for m := range want {
			missing = append(missing, m)
		}
		slices.Sort(missing)
		return idx, fmt.Errorf("kernels: the export is truncated: missing %s", strings.Join(missing, ", "))
	}
	return idx, nil
}

// checkImport holds one unpacked entry to what it claims.
func checkImport(ctx context.Context, tmp string, e exportEntry, cacheDir string) error {
	dir := filepath.Join(tmp, e.Key)
	for _, f := range exportFiles {
		sum, err := fileSHA256(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if sum != e.SHA256[f] {
			return fmt.Errorf("%s: sha256 %s, the manifest says %s: the file was changed or damaged in transit", f, sum, e.SHA256[f])
		}
	}
	m, err := readMeta(dir)
	if err != nil {
		return fmt.Errorf("meta.json: %w", err)
	}
	if m.Key != e.Key || m.Variant != e.Variant {
		return fmt.Errorf("meta.json says %s key %s, the manifest %s key %s", m.Variant, m.Key, e.Variant, e.Key)
	}
	if rel, err := BzImageVersion(filepath.Join(dir, "bzImage")); err != nil {
		return err
	} else if rel != m.Release {
		return fmt.Errorf("bzImage's boot header says release %s, meta.json %s", rel, m.Release)
	}
	p, err := planBuild(ctx, BuildOptions{Variant: e.Variant, CacheDir: cacheDir})
	if err != nil {
		return fmt.Errorf("this machine cannot plan %s: %w", e.Variant, err)
	}
	if p.key != e.Key {
		return fmt.Errorf("built from other inputs than this machine would use (its key here is %s)%s: build it here with yank kernel build %s", p.key, keyDiff(m, p), e.Variant)
	}
	return nil
}

// keyDiff names the key inputs that differ, where meta.json records them.
func keyDiff(m Meta, p *plan) string {
	var d []string
	if m.Compiler != p.compiler {
		d = append(d, fmt.Sprintf("compiler %q there, %q here", m.Compiler, p.compiler))
	}
	if m.Source != p.sourceID {
		d = append(d, fmt.Sprintf("source %q there, %q here", m.Source, p.sourceID))
	}
	if m.Recipe != RecipeVersion {
		d = append(d, fmt.Sprintf("recipe %s there, %s here", m.Recipe, RecipeVersion))
	}
	if len(m.Patches) != len(p.patches) {
		d = append(d, fmt.Sprintf("%d patches there, %d here", len(m.Patches), len(p.patches)))
	} else {
		for i, mp := range m.Patches {
			if mp.SHA256 != p.patches[i].SHA256() {
				d = append(d, "patch "+mp.Name+" differs")
			}
		}
	}
	if len(d) == 0 {
		return " (the config fragment differs)"
	}
	return ": " + strings.Join(d, "; ")
}

func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	_, err := hex.DecodeString(k)
	return err == nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
