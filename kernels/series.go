package kernels

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// LoadSeries reads a user's patch series, owned by the kernel spec or
// variant named owner. path is one of:
//   - a .patch or .diff file: one patch, or several if it is an mbox;
//   - a directory: its *.patch and *.diff files in name order (what `git
//     format-patch -o DIR` writes), each of which may be an mbox;
//   - an mbox of any name holding one or more patches (`git format-patch
//     --stdout`, `b4 am`).
//
// Mails without a diff (a cover letter) are skipped; a series with no diff
// at all is an error.
func LoadSeries(path, owner string) ([]Patch, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("series %s: no such file or directory", path)
	} else if err != nil {
		return nil, fmt.Errorf("series %s: %w", path, err)
	}
	var files []string
	if st.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", path, err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && (strings.HasSuffix(e.Name(), ".patch") || strings.HasSuffix(e.Name(), ".diff")) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("series %s: a directory with no *.patch or *.diff files (write it with git format-patch -o %s)", path, path)
		}
	} else {
		files = []string{path}
	}
	var out []Patch
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("series %s: %w", f, err)
		}
		mails := splitMbox(data)
		var n int
		for i, m := range mails {
			if !hasDiff(m) {
				continue
			}
			p := Patch{Name: filepath.Base(f), Variant: owner, Source: f, Subject: subjectOf(m), Data: m}
			if len(mails) > 1 {
				// One file, several patches: number them so the cache key
				// and errors tell them apart.
				p.Name = fmt.Sprintf("%s#%d", filepath.Base(f), i+1)
				p.Source = fmt.Sprintf("%s (mail %d of %d)", f, i+1, len(mails))
			}
			out = append(out, p)
			n++
		}
		if n == 0 && !st.IsDir() {
			return nil, fmt.Errorf("series %s: no diff in it (want git format-patch output, an mbox of patches or a unified diff)", f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("series %s: no diff in any of its files", path)
	}
	return out, nil
}

// mboxFrom is an mbox message separator as git format-patch ("From <sha>
// Mon Sep 17 00:00:00 2001") and b4 ("From git@z Thu Jan  1 00:00:00 1970")
// write it.
var mboxFrom = regexp.MustCompile(`^From \S+ +(Mon|Tue|Wed|Thu|Fri|Sat|Sun) `)

// splitMbox cuts data at each mbox separator that starts the data or
// follows an empty line; data without one is a single patch.
func splitMbox(data []byte) [][]byte {
	var cuts []int
	off := 0
	prevEmpty := true
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if prevEmpty && mboxFrom.Match(line) {
			cuts = append(cuts, off)
		}
		prevEmpty = len(bytes.TrimRight(line, "\r\n")) == 0
		off += len(line)
	}
	if len(cuts) <= 1 {
		return [][]byte{data}
	}
	var out [][]byte
	if cuts[0] > 0 && hasDiff(data[:cuts[0]]) {
		out = append(out, data[:cuts[0]])
	}
	for i, c := range cuts {
		end := len(data)
		if i+1 < len(cuts) {
			end = cuts[i+1]
		}
		out = append(out, data[c:end])
	}
	return out
}

func hasDiff(b []byte) bool {
	return bytes.Contains(b, []byte("\ndiff --git ")) || bytes.HasPrefix(b, []byte("diff --git ")) ||
		bytes.Contains(b, []byte("\n--- ")) && bytes.Contains(b, []byte("\n+++ ")) && bytes.Contains(b, []byte("\n@@ "))
}

// subjectOf returns a mail's Subject: header (unfolded), "" if it has none.
func subjectOf(mail []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(mail))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var subj string
	in := false
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case line == "":
			return strings.TrimSpace(subj) // end of the headers
		case in && (line[0] == ' ' || line[0] == '\t'):
			subj += " " + strings.TrimSpace(line)
		case strings.HasPrefix(line, "Subject:"):
			subj, in = strings.TrimSpace(strings.TrimPrefix(line, "Subject:")), true
		case strings.HasPrefix(line, "diff --git ") || strings.HasPrefix(line, "--- "):
			return strings.TrimSpace(subj)
		default:
			in = false
		}
	}
	return strings.TrimSpace(subj)
}
