package hotunplug_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Plain tests of the evidence helpers; they run beside TestHotunplug.

func TestPhasesKeepTheLatestLine(t *testing.T) {
	p := &phases{}
	if !strings.Contains(p.Latest(), "not started") {
		t.Errorf("empty: %q", p.Latest())
	}
	fmt.Fprint(p, "17:00:00 k/s@2s: booting\n17:00:03 k/s@2s: guest re")
	if got := p.Latest(); got != "yank trial phase: 17:00:00 k/s@2s: booting" {
		t.Errorf("after a partial line: %q", got)
	}
	fmt.Fprint(p, "ady\n\n")
	if got := p.Latest(); got != "yank trial phase: 17:00:03 k/s@2s: guest ready" {
		t.Errorf("after completing it: %q", got)
	}
}

func TestTimelineExcerpt(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf("t%03d console boot line %d", i, i))
	}
	lines[20] = "t020 console [ 3.2] YANK-T0 trigger=unbind pid=71"
	lines[30] = "t030 host    slot power cut on rp1"
	lines[40] = "t040 host    verdict HANG: sh (pid 71) in D state"
	os.WriteFile(filepath.Join(dir, "timeline.log"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	got := strings.Split(timelineExcerpt(dir, 40), "\n")
	if !strings.Contains(got[0], "YANK-T0") || !strings.HasPrefix(got[len(got)-1], "t043") || len(got) != 24 {
		t.Errorf("excerpt from %q to %q, %d lines", got[0], got[len(got)-1], len(got))
	}
	short := timelineExcerpt(dir, 10)
	if !strings.Contains(short, "YANK-T0") || !strings.Contains(short, "    ...") || !strings.Contains(short, "t043") {
		t.Errorf("capped excerpt:\n%s", short)
	}
	if timelineExcerpt(t.TempDir(), 10) != "" {
		t.Error("excerpt of a missing file")
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	os.WriteFile(p, []byte("a\nb\nc\n"), 0o600)
	if got := tail(p, 2); got != "b\nc" {
		t.Errorf("tail = %q", got)
	}
	if got := tail(p, 10); got != "a\nb\nc" {
		t.Errorf("tail of a short file = %q", got)
	}
}

func TestLibvirtPoolFlag(t *testing.T) {
	if p, err := libvirtPool(""); err != nil || p != nil {
		t.Fatalf("empty -yank.libvirt: %v %v, want no pool", p, err)
	}
	p, err := libvirtPool("qemu:///system#2, qemu+tcp://127.0.0.1/system")
	if err != nil || p == nil || len(p.Backends()) != 2 || p.Capacity() != 3 {
		t.Fatalf("got %v (%v)", p, err)
	}
	if _, err := libvirtPool("http://host#x"); err == nil {
		t.Fatal("accepted a non-qemu URI")
	}
}
