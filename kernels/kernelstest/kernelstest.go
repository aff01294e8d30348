// Package kernelstest has test doubles for code that takes kernels: a file
// that passes for a bzImage (boot header and version string, no kernel)
// and patch series written the way git format-patch writes them.
package kernelstest

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FakeBzImage writes a file with an x86 boot header ("HdrS") whose
// kernel_version string is version (e.g. "6.12.117 (yank@yank) #1"), enough
// for kernels.ParseSpec and kernels.BzImageVersion; it boots nothing.
func FakeBzImage(t testing.TB, dir, version string) string {
	t.Helper()
	b := make([]byte, 0x400)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x100) // string at 0x300
	copy(b[0x300:], version+"\x00")
	p := filepath.Join(dir, "bzImage")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Mail is one patch of a series.
type Mail struct {
	Subject string
	Diff    string // unified diff, starting at "diff --git" or "---"
}

// FormatPatch renders a mail the way `git format-patch` does.
func FormatPatch(n, of int, m Mail) string {
	return fmt.Sprintf("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: Test <test@example.com>\nDate: Mon, 1 Dec 2026 00:00:00 +0000\nSubject: [PATCH %d/%d] %s\n\nbody\n---\n%s-- \n2.39.5\n\n", n, of, m.Subject, m.Diff)
}

// WriteSeriesDir writes mails as dir/000N-<slug>.patch, as git format-patch
// -o dir does, and returns dir.
func WriteSeriesDir(t testing.TB, dir string, mails ...Mail) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, m := range mails {
		slug := strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
				return r
			}
			return '-'
		}, strings.ToLower(m.Subject))
		name := fmt.Sprintf("%04d-%s.patch", i+1, slug)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(FormatPatch(i+1, len(mails), m)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// WriteMbox writes mails into one mbox file, as git format-patch --stdout
// does, and returns its path.
func WriteMbox(t testing.TB, path string, mails ...Mail) string {
	t.Helper()
	var b strings.Builder
	for i, m := range mails {
		b.WriteString(FormatPatch(i+1, len(mails), m))
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
