package kernels

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// FilePatch is one file's part of a patch, as far as yank needs it: the
// paths (without a/ b/ prefixes) and hunk headers.
type FilePatch struct {
	OldPath, NewPath string
	Hunks            []Hunk
}

// Hunk is one "@@ -a,b +c,d @@" section.
type Hunk struct {
	Header   string // the full @@ line
	OldStart int
}

var hunkRe = regexp.MustCompile(`^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@`)

// ParsePatch extracts the files and hunk headers of a unified or git diff.
// It never fails: text it does not understand is skipped (git apply is the
// judge of whether the patch is valid).
func ParsePatch(data []byte) []FilePatch {
	var out []FilePatch
	cur := -1
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "diff --git "):
			out = append(out, FilePatch{})
			cur = len(out) - 1
			if f := strings.Fields(line); len(f) == 4 {
				out[cur].OldPath = stripPrefix(f[2])
				out[cur].NewPath = stripPrefix(f[3])
			}
		case strings.HasPrefix(line, "--- "):
			// A plain unified diff starts a file at "---"; in a git diff
			// the "diff --git" line already did.
			if cur < 0 || len(out[cur].Hunks) > 0 || out[cur].OldPath == "" && out[cur].NewPath == "" {
				out = append(out, FilePatch{})
				cur = len(out) - 1
			}
			if p := diffPath(line[4:]); p != "" {
				out[cur].OldPath = p
			}
		case strings.HasPrefix(line, "+++ ") && cur >= 0:
			if p := diffPath(line[4:]); p != "" {
				out[cur].NewPath = p
			}
		case strings.HasPrefix(line, "@@ ") && cur >= 0:
			h := Hunk{Header: line}
			if m := hunkRe.FindStringSubmatch(line); m != nil {
				h.OldStart, _ = strconv.Atoi(m[1])
			}
			out[cur].Hunks = append(out[cur].Hunks, h)
		}
	}
	return out
}

// diffPath turns "a/drivers/pci/pci.h\t2025-..." into "drivers/pci/pci.h";
// /dev/null becomes "".
func diffPath(s string) string {
	if i := strings.IndexByte(s, '\t'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimSpace(s)
	if s == "/dev/null" {
		return ""
	}
	return stripPrefix(s)
}

func stripPrefix(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// PatchError reports a patch that does not apply.
type PatchError struct {
	Patch   string // patch file, e.g. rfc-v3/0001-pci-report-surprise-removal-event.patch
	Subject string // its Subject: line, if it is a mail
	File    string // file in the tree whose hunk failed, if known
	Hunk    string // the failing hunk's @@ header, if known
	Output  string // git apply's own words
}

func (e *PatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "patch %s", e.Patch)
	if e.Subject != "" {
		fmt.Fprintf(&b, " (%q)", e.Subject)
	}
	b.WriteString(" does not apply")
	if e.File != "" {
		fmt.Fprintf(&b, ": %s", e.File)
	}
	if e.Hunk != "" {
		fmt.Fprintf(&b, " hunk %s", e.Hunk)
	}
	if out := strings.TrimSpace(e.Output); out != "" {
		fmt.Fprintf(&b, "\n%s", indent(out, "  "))
	}
	return b.String()
}

var (
	failedAtRe = regexp.MustCompile(`(?m)^error: patch failed: (.+):(\d+)$`)
	fileErrRe  = regexp.MustCompile(`(?m)^error: (.+?): (?:No such file or directory|does not exist in index|already exists in working directory|patch does not apply|does not match index)$`)
)

// explainApplyFailure maps git apply's output back to the patch's own
// file and hunk header so the error names what to fix.
func explainApplyFailure(p Patch, output string) *PatchError {
	e := &PatchError{Patch: p.where(), Subject: p.Subject, Output: output}
	files := ParsePatch(p.Data)
	if m := failedAtRe.FindStringSubmatch(output); m != nil {
		e.File = m[1]
		line, _ := strconv.Atoi(m[2])
		for _, f := range files {
			if f.OldPath != e.File && f.NewPath != e.File {
				continue
			}
			for _, h := range f.Hunks {
				if h.OldStart == line {
					e.Hunk = h.Header
					return e
				}
			}
		}
		e.Hunk = fmt.Sprintf("at line %d", line)
		return e
	}
	if m := fileErrRe.FindStringSubmatch(output); m != nil {
		e.File = m[1]
	}
	return e
}

// ApplySeries applies patches in order to the tree at dir with git apply
// (atomic per patch: a patch that fails leaves its files untouched).
// Files the patches touch are first unshared if they are hard links, so a
// tree hard-linked from the pristine source never corrupts it.
// Progress gets one line per patch.
func ApplySeries(ctx context.Context, dir string, patches []Patch, log io.Writer) error {
	for _, p := range patches {
		name := p.where()
		if log != nil {
			fmt.Fprintf(log, "applying %s\n", name)
		}
		for _, f := range ParsePatch(p.Data) {
			for _, rel := range []string{f.OldPath, f.NewPath} {
				if err := unshare(dir, rel); err != nil {
					return fmt.Errorf("patch %s: %w", name, err)
				}
			}
		}
		cmd := exec.CommandContext(ctx, "git", "apply", "-p1", "--whitespace=nowarn", "-")
		cmd.Dir = dir
		// Stop git from treating an enclosing repository as the root: the
		// patch must apply relative to dir.
		cmd.Env = append(os.Environ(), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
		cmd.Stdin = bytes.NewReader(p.Data)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if _, ok := err.(*exec.ExitError); !ok {
				return fmt.Errorf("patch %s: running git apply: %w", name, err)
			}
			return explainApplyFailure(p, out.String())
		}
		if log != nil && out.Len() > 0 {
			log.Write(out.Bytes())
		}
	}
	return nil
}

// unshare replaces dir/rel by a private copy when it is a hard link.
func unshare(dir, rel string) error {
	if rel == "" || !filepath.IsLocal(rel) {
		return nil // git apply rejects such paths itself
	}
	p := filepath.Join(dir, rel)
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	if n, ok := linkCount(st); !ok || n < 2 {
		return nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	tmp := p + ".yank-unshare"
	if err := os.WriteFile(tmp, data, st.Mode().Perm()); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, st.ModTime(), st.ModTime()); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func indent(s, pfx string) string {
	return pfx + strings.ReplaceAll(s, "\n", "\n"+pfx)
}

// CheckSeries tells whether patches apply, in order, to the tree at src
// without touching it or copying all of it: the files they touch are
// copied to a temp dir and the series is applied there (git apply needs
// nothing else). It takes well under a second, so a series that does not
// apply fails before any build.
func CheckSeries(ctx context.Context, src string, patches []Patch) error {
	tmp, err := os.MkdirTemp("", "yank-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range patches {
		for _, f := range ParsePatch(p.Data) {
			for _, rel := range []string{f.OldPath, f.NewPath} {
				if rel == "" || !filepath.IsLocal(rel) {
					continue
				}
				from, to := filepath.Join(src, rel), filepath.Join(tmp, rel)
				st, err := os.Stat(from)
				if err != nil || !st.Mode().IsRegular() || exists(to) {
					continue // new files are created by the patch itself
				}
				if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
					return err
				}
				if err := copyFile(from, to); err != nil {
					return err
				}
			}
		}
	}
	return ApplySeries(ctx, tmp, patches, nil)
}
