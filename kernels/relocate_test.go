package kernels

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRelocateObjDir(t *testing.T) {
	obj := t.TempDir()
	oldSrc := "/some/other/root/kernels/.tmp-abc123-0f0f0f/src"
	cmd := "cmd_x := gcc -I" + oldSrc + "/tools/include -o x.o " + oldSrc + "/tools/objtool/check.c\n" +
		"deps_x := \\\n  " + oldSrc + "/tools/objtool/check.c \\\n  /usr/include/stdio.h \\\n" +
		"x.o: " + oldSrc + "/x.c /keep/.tmp-abc1234-00/src/y.c\n"
	p := filepath.Join(obj, "tools", ".check.o.cmd")
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte(cmd), 0o644)
	bin := filepath.Join(obj, "tools", "check.o") // binaries are left alone
	os.WriteFile(bin, []byte(oldSrc), 0o644)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	os.Chtimes(p, mtime, mtime)

	n, err := relocateObjDir(obj, "abc123", "/new/.tmp-def-99/src")
	if err != nil || n != 1 {
		t.Fatalf("relocate: n=%d err=%v", n, err)
	}
	got, _ := os.ReadFile(p)
	want := "cmd_x := gcc -I/new/.tmp-def-99/src/tools/include -o x.o /new/.tmp-def-99/src/tools/objtool/check.c\n" +
		"deps_x := \\\n  /new/.tmp-def-99/src/tools/objtool/check.c \\\n  /usr/include/stdio.h \\\n" +
		"x.o: /new/.tmp-def-99/src/x.c /keep/.tmp-abc1234-00/src/y.c\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if st, _ := os.Stat(p); !st.ModTime().Equal(mtime) {
		t.Errorf("mtime changed to %v", st.ModTime())
	}
	if b, _ := os.ReadFile(bin); string(b) != oldSrc {
		t.Error("binary rewritten")
	}
}
