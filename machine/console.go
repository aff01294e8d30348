package machine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/yank-dev/yank/journal"
)

// Console is the guest's serial console: every line with the host time it
// arrived, kept in memory for waiting and written to a log file as
// "<RFC3339Nano host time> <line>" so it lines up with QMP and agent logs.
type Console struct {
	lines *journal.Journal[string]
	file  *os.File
	echo  io.Writer
	mu    sync.Mutex // serializes file and echo writes
	done  chan struct{}
}

// TimeFormat is the host timestamp format in every yank log.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

func newConsole(logPath string, echo io.Writer) (*Console, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("console log: %w", err)
	}
	return &Console{lines: journal.New[string](), file: f, echo: echo, done: make(chan struct{})}, nil
}

// Feed reads the guest's serial output from r until EOF; the console then
// ends ("QEMU exited") unless Fail ended it first. A backend calls it once.
func (c *Console) Feed(r io.Reader) {
	defer close(c.done)
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			c.add(time.Now(), strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			break
		}
	}
	c.lines.Close(fmt.Errorf("guest console closed: QEMU exited"))
}

func (c *Console) add(t time.Time, line string) {
	// Drop characters that make logs unreadable (ANSI, stray NULs).
	line = strings.Map(func(r rune) rune {
		if r == '\t' || r >= ' ' && r != 0x7f {
			return r
		}
		return -1
	}, line)
	c.lines.AppendAt(t.UTC(), line)
	c.mu.Lock()
	defer c.mu.Unlock()
	stamped := t.UTC().Format(TimeFormat) + " " + line + "\n"
	c.file.WriteString(stamped)
	if c.echo != nil {
		io.WriteString(c.echo, stamped)
	}
}

// Mark returns a position; Wait considers only lines after it.
func (c *Console) Mark() int { return c.lines.Mark() }

// Wait returns the first line at or after mark containing substr.
func (c *Console) Wait(ctx context.Context, mark int, substr string) (journal.Entry[string], error) {
	return c.lines.Wait(ctx, mark, func(s string) bool { return strings.Contains(s, substr) })
}

// WaitFunc returns the first line at or after mark for which match is true.
func (c *Console) WaitFunc(ctx context.Context, mark int, match func(string) bool) (journal.Entry[string], error) {
	return c.lines.Wait(ctx, mark, match)
}

// Lines returns every line from mark on.
func (c *Console) Lines(mark int) []journal.Entry[string] { return c.lines.Since(mark) }

// Text returns the console from mark on as plain text.
func (c *Console) Text(mark int) string {
	var b strings.Builder
	for _, e := range c.lines.Since(mark) {
		b.WriteString(e.Item)
		b.WriteByte('\n')
	}
	return b.String()
}

// Tail returns the last n lines, for error messages.
func (c *Console) Tail(n int) string {
	all := c.lines.Snapshot()
	if len(all) > n {
		all = all[len(all)-n:]
	}
	var b strings.Builder
	for _, e := range all {
		b.WriteString("  | " + e.Item + "\n")
	}
	return b.String()
}

// Fail ends the console with err: waits for lines not yet seen return it.
// A backend calls it when it knows better than Feed's "QEMU exited" why
// the output stopped.
func (c *Console) Fail(err error) { c.lines.Close(err) }

// Drained is closed when Feed has returned.
func (c *Console) Drained() <-chan struct{} { return c.done }

func (c *Console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.file.Close()
}
