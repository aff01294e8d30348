package kernels

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// MissingSourceError says which package provides a missing source.
type MissingSourceError struct {
	Path       string
	AptPackage string
}

func (e *MissingSourceError) Error() string {
	return fmt.Sprintf("kernel source %s not found: install it with `apt-get install %s`", e.Path, e.AptPackage)
}

type tarballID struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	SHA256  string `json:"sha256"`
}

// tarballIdentity returns the tarball's sha256, hashing it only when its
// size or mtime changed since the last time (the result is cached in
// <root>/src/ids.json; hashing 130 MiB costs about a second).
func tarballIdentity(root, tarball string) (string, error) {
	st, err := os.Stat(tarball)
	if err != nil {
		return "", err
	}
	idsPath := filepath.Join(root, "src", "ids.json")
	ids := map[string]tarballID{}
	if b, err := os.ReadFile(idsPath); err == nil {
		_ = json.Unmarshal(b, &ids) // a corrupt file is just a cache miss
	}
	if id, ok := ids[tarball]; ok && id.Size == st.Size() && id.ModTime == st.ModTime().UnixNano() && id.SHA256 != "" {
		return id.SHA256, nil
	}
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ids[tarball] = tarballID{Size: st.Size(), ModTime: st.ModTime().UnixNano(), SHA256: sum}
	if err := mkdirPrivate(filepath.Join(root, "src")); err == nil {
		_ = writeJSON(idsPath, ids) // losing the cache only costs a re-hash
	}
	return sum, nil
}

// unpackTarball extracts the tarball once into <root>/src/<sha16>/linux and
// returns that directory. The extraction happens in a temp dir renamed into
// place, under a lock, so a killed unpack leaves nothing half done.
func unpackTarball(ctx context.Context, root, tarball, sum string, progress io.Writer) (string, error) {
	srcRoot := filepath.Join(root, "src")
	if err := mkdirPrivate(srcRoot); err != nil {
		return "", err
	}
	final := filepath.Join(srcRoot, sum[:16])
	tree := filepath.Join(final, "linux")
	if exists(filepath.Join(tree, "Makefile")) {
		return tree, nil
	}
	l, err := lock(ctx, filepath.Join(srcRoot, sum[:16]+".lock"))
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	if exists(filepath.Join(tree, "Makefile")) {
		return tree, nil
	}
	cleanStale(srcRoot, sum[:16])
	tmp := filepath.Join(srcRoot, tmpPrefix+sum[:16]+"-"+randomSuffix())
	if err := mkdirPrivate(tmp); err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if progress != nil {
		fmt.Fprintf(progress, "unpack: %s\n", tarball)
	}
	var out bytes.Buffer
	if err := run(ctx, tmp, nil, &out, "tar", "-xf", tarball, "--no-same-owner"); err != nil {
		return "", fmt.Errorf("unpacking %s: %w\n%s", tarball, err, tail(out.String(), 10))
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return "", err
	}
	if len(ents) != 1 || !ents[0].IsDir() || !exists(filepath.Join(tmp, ents[0].Name(), "Makefile")) {
		return "", fmt.Errorf("unpacking %s: expected one top-level kernel directory", tarball)
	}
	if err := os.Rename(filepath.Join(tmp, ents[0].Name()), filepath.Join(tmp, "linux")); err != nil {
		return "", err
	}
	os.RemoveAll(final) // a leftover without Makefile is junk
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return tree, nil
}

// treeIdentity identifies a kernel tree on disk. For a git checkout it is
// the HEAD commit plus, when the work tree is dirty, a hash of
// `git status --porcelain` and `git diff HEAD`; otherwise a hash of every
// file's path, mode and contents. rev is a short label for humans.
func treeIdentity(ctx context.Context, dir string) (id, rev string, err error) {
	var head bytes.Buffer
	if err := run(ctx, dir, nil, &head, "git", "rev-parse", "--verify", "HEAD"); err == nil {
		commit := strings.TrimSpace(head.String())
		var status, diff bytes.Buffer
		if err := run(ctx, dir, nil, &status, "git", "status", "--porcelain"); err != nil {
			return "", "", fmt.Errorf("git status in %s: %w", dir, err)
		}
		if status.Len() == 0 {
			return "git:" + commit, short(commit), nil
		}
		if err := run(ctx, dir, nil, &diff, "git", "diff", "HEAD", "--binary"); err != nil {
			return "", "", fmt.Errorf("git diff in %s: %w", dir, err)
		}
		h := sha256.New()
		h.Write(status.Bytes())
		h.Write(diff.Bytes())
		d := hex.EncodeToString(h.Sum(nil))
		return "git:" + commit + "+dirty:" + d[:16], short(commit) + "-dirty-" + d[:8], nil
	}
	if ctx.Err() != nil {
		return "", "", ctx.Err()
	}
	sum, err := contentHash(ctx, dir)
	if err != nil {
		return "", "", err
	}
	return "content:" + sum, "content-" + sum[:12], nil
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// contentHash hashes every regular file and symlink under dir (skipping
// .git), in path order.
func contentHash(ctx context.Context, dir string) (string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			paths = append(paths, p)
		}
		return ctx.Err()
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Lstat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%q %o\n", rel, st.Mode())
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			io.WriteString(h, t)
		case st.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compilerVersion is the first line of `gcc --version`.
func compilerVersion(ctx context.Context) (string, error) {
	var out bytes.Buffer
	if err := run(ctx, "", nil, &out, "gcc", "--version"); err != nil {
		return "", fmt.Errorf("gcc not usable (apt-get install build-essential): %w", err)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	return strings.TrimSpace(line), nil
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// run executes name args in dir (in its own process group, killed as a
// whole when ctx ends), sending stdout and stderr to out.
func run(ctx context.Context, dir string, env []string, out io.Writer, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdout, cmd.Stderr = out, out
	killGroupOnCancel(cmd)
	return cmd.Run()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
