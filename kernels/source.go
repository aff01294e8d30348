package kernels

// Source identity: what a tarball or a tree on disk is, for the cache key.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
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
	sum, err := fileSHA256(tarball)
	if err != nil {
		return "", err
	}
	ids[tarball] = tarballID{Size: st.Size(), ModTime: st.ModTime().UnixNano(), SHA256: sum}
	if err := mkdirPrivate(filepath.Join(root, "src")); err == nil {
		_ = writeJSON(idsPath, ids) // losing the cache only costs a re-hash
	}
	return sum, nil
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
			return "git:" + commit, shortCommit(commit), nil
		}
		if err := run(ctx, dir, nil, &diff, "git", "diff", "HEAD", "--binary"); err != nil {
			return "", "", fmt.Errorf("git diff in %s: %w", dir, err)
		}
		h := sha256.New()
		h.Write(status.Bytes())
		h.Write(diff.Bytes())
		d := hex.EncodeToString(h.Sum(nil))
		return "git:" + commit + "+dirty:" + d[:16], shortCommit(commit) + "-dirty-" + d[:8], nil
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

// shortCommit abbreviates a commit hash to 12 digits, as git log does.
func shortCommit(commit string) string { return commit[:min(len(commit), 12)] }

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
