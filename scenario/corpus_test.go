package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/yank-dev/yank/journal"
)

// The console corpus (testdata/console) is real guest consoles captured by
// trial/internal/corpusgen: LKDTM crashes of every kind ScanConsole
// must tell apart, khungtaskd reports, and normal boots and removals that
// must not look like crashes. Each file is a header of "# key: value"
// comment lines, a blank line, then the console lines as the guest printed
// them (printk stamps included):
//
//	# captured: go run ./trial/internal/corpusgen (kernel stock, ...) on 2026-12-01
//	# lkdtm: BUG
//	# note: ...
//	# want-crash: kernel BUG at drivers/misc/lkdtm/bugs.c:78!
//	# want-warnings: 0
//	# want-hung:
//
// want-crash is the first crash line ScanConsole must report (printk stamp
// stripped; empty: no crash), want-warnings how many WARNs, want-hung the
// comma-separated pids khungtaskd named (empty: none). Values are compared
// with surrounding spaces trimmed. captured and the three want-* keys are
// required; lkdtm and note are optional; any other key is an error.

var (
	corpusRequired = []string{"captured", "want-crash", "want-warnings", "want-hung"}
	corpusOptional = []string{"lkdtm", "note"}
)

type corpusFile struct {
	header   map[string]string
	crash    string
	warnings int
	hung     []int // sorted
	lines    []string
}

// parseCorpus reads one corpus file.
func parseCorpus(data []byte) (corpusFile, error) {
	c := corpusFile{header: map[string]string{}}
	text := strings.TrimSuffix(string(data), "\n")
	all := strings.Split(text, "\n")
	i := 0
	for ; i < len(all) && strings.HasPrefix(all[i], "#"); i++ {
		key, value, ok := strings.Cut(strings.TrimPrefix(all[i], "#"), ":")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return c, fmt.Errorf("line %d: header line is not \"# key: value\": %q", i+1, all[i])
		}
		if !slices.Contains(corpusRequired, key) && !slices.Contains(corpusOptional, key) {
			return c, fmt.Errorf("line %d: unknown header key %q", i+1, key)
		}
		if _, dup := c.header[key]; dup {
			return c, fmt.Errorf("line %d: header key %q given twice", i+1, key)
		}
		c.header[key] = strings.TrimSpace(value)
	}
	if i == 0 {
		return c, errors.New("no header: the file must start with \"# key: value\" lines")
	}
	if i >= len(all) || all[i] != "" {
		return c, fmt.Errorf("line %d: the header must end with a blank line", i+1)
	}
	for _, k := range corpusRequired {
		if _, ok := c.header[k]; !ok {
			return c, fmt.Errorf("header lacks %q", k)
		}
	}
	if c.header["captured"] == "" {
		return c, errors.New("header: captured is empty (say how and when the console was captured)")
	}
	c.crash = c.header["want-crash"]
	n, err := strconv.Atoi(c.header["want-warnings"])
	if err != nil || n < 0 {
		return c, fmt.Errorf("header: want-warnings %q is not a count", c.header["want-warnings"])
	}
	c.warnings = n
	if h := c.header["want-hung"]; h != "" {
		for _, f := range strings.Split(h, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return c, fmt.Errorf("header: want-hung %q is not a list of pids", h)
			}
			c.hung = append(c.hung, pid)
		}
		sort.Ints(c.hung)
	}
	c.lines = all[i+1:]
	if len(c.lines) == 0 || len(c.lines) == 1 && c.lines[0] == "" {
		return c, errors.New("no console lines after the header")
	}
	return c, nil
}

func TestConsoleCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "console", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no corpus in testdata/console (go run ./trial/internal/corpusgen)")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parseCorpus(data)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			j := journal.New[string]()
			for _, l := range c.lines {
				j.Append(l)
			}
			crash, warns, hung := ScanConsole(j.Snapshot())
			switch {
			case c.crash == "" && crash != nil:
				t.Errorf("crash %q, want none", crash.Line)
			case c.crash != "" && crash == nil:
				t.Errorf("no crash, want %q", c.crash)
			case crash != nil && strings.TrimSpace(crash.Line) != c.crash:
				t.Errorf("crash %q, want %q", crash.Line, c.crash)
			case crash != nil:
				// The report text starts at the crash line, raw.
				first, _, _ := strings.Cut(crash.Text, "\n")
				if crash.Kind != "crash" || stripPrintkTime(first) != crash.Line {
					t.Errorf("crash hit %+v does not start at its line", crash)
				}
			}
			if len(warns) != c.warnings {
				var got []string
				for _, w := range warns {
					got = append(got, w.Line)
				}
				t.Errorf("%d warnings %q, want %d", len(warns), got, c.warnings)
			}
			var pids []int
			for pid := range hung {
				pids = append(pids, pid)
			}
			sort.Ints(pids)
			if !slices.Equal(pids, c.hung) {
				t.Errorf("hung pids %v, want %v", pids, c.hung)
			}
		})
	}
}

// A corpus file without a complete header must fail, not pass vacuously.
func TestConsoleCorpusHeader(t *testing.T) {
	const ok = "# captured: by hand\n# want-crash: BUG: x\n# want-warnings: 0\n# want-hung: 7, 26\n\n[    1.0] BUG: x\n"
	c, err := parseCorpus([]byte(ok))
	if err != nil || c.crash != "BUG: x" || !slices.Equal(c.hung, []int{7, 26}) || len(c.lines) != 1 {
		t.Fatalf("%+v %v", c, err)
	}
	for name, bad := range map[string]string{
		"no header":          "[    1.0] BUG: x\n",
		"no want-crash":      "# captured: x\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"no want-warnings":   "# captured: x\n# want-crash:\n# want-hung:\n\nline\n",
		"no want-hung":       "# captured: x\n# want-crash:\n# want-warnings: 0\n\nline\n",
		"no captured":        "# want-crash:\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"empty captured":     "# captured:\n# want-crash:\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"no blank line":      "# captured: x\n# want-crash:\n# want-warnings: 0\n# want-hung:\nline\n",
		"no console":         "# captured: x\n# want-crash:\n# want-warnings: 0\n# want-hung:\n\n",
		"bad count":          "# captured: x\n# want-crash:\n# want-warnings: one\n# want-hung:\n\nline\n",
		"bad pid":            "# captured: x\n# want-crash:\n# want-warnings: 0\n# want-hung: sh\n\nline\n",
		"unknown key":        "# captured: x\n# want-crashes:\n# want-crash:\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"duplicate key":      "# captured: x\n# want-crash:\n# want-crash: BUG: x\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"not key: value":     "# captured: x\n# free text\n# want-crash:\n# want-warnings: 0\n# want-hung:\n\nline\n",
		"header after lines": "line\n# captured: x\n# want-crash:\n# want-warnings: 0\n# want-hung:\n",
	} {
		if _, err := parseCorpus([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
