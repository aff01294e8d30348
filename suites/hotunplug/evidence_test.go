package hotunplug_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
)

// phases is a trial's Progress writer: it forwards phase lines to the
// GinkgoWriter and keeps the latest for the progress reporter, which
// Ginkgo calls from another goroutine when a spec runs long.
type phases struct {
	mu     sync.Mutex
	latest string
	buf    []byte
}

func (p *phases) Write(b []byte) (int, error) {
	GinkgoWriter.Write(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		if line := strings.TrimSpace(string(p.buf[:i])); line != "" {
			p.latest = line
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

// Latest is the progress report: the trial's current phase.
func (p *phases) Latest() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.latest == "" {
		return "yank trial: not started yet"
	}
	return "yank trial phase: " + p.latest
}

// tail returns the last n lines of a file ("" if unreadable).
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// timelineExcerpt is the part of timeline.log that tells the story: from
// the trigger marker (time zero) to a few lines after the verdict.
func timelineExcerpt(dir string, limit int) string {
	b, err := os.ReadFile(filepath.Join(dir, "timeline.log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	from, to := 0, len(lines)
	for i, l := range lines {
		if from == 0 && strings.Contains(l, "YANK-T0") {
			from = i
		}
		if strings.Contains(l, "host    verdict ") {
			to = min(len(lines), i+4)
		}
	}
	if to-from > limit {
		// Keep the head (trigger, removal) and the tail (verdict).
		head := lines[from : from+limit/2]
		rest := lines[to-limit/2 : to]
		return strings.Join(head, "\n") + "\n    ...\n" + strings.Join(rest, "\n")
	}
	return strings.Join(lines[from:to], "\n")
}
