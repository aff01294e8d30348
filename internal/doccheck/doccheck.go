// Package doccheck reads the commands a Markdown page tells its reader to
// type (`yank run -kernels ...`, `-yank.cut-at`, `make matrix`) and the
// output blocks it says were generated, so tests can hold the docs to the
// real flag sets, Makefile and recorded trials.
package doccheck

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Ref is where in the docs something was written.
type Ref struct {
	File string
	Line int
}

func (r Ref) String() string { return fmt.Sprintf("%s:%d", r.File, r.Line) }

// Command is one `yank ...` invocation: its subcommand words (e.g. "run",
// or "kernel", "build") and the flag names given to it, without dashes.
type Command struct {
	Ref
	Words []string
	Flags []string
}

// Name is the subcommand as typed: "run", "kernel build".
func (c Command) Name() string { return strings.Join(c.Words, " ") }

// Runnable are the subcommands that have subcommands but also run alone
// (`yank report DIR` and `yank report merge DIR...`).
var Runnable = map[string]bool{"report": true}

// Use is one flag or make target written somewhere.
type Use struct {
	Ref
	Name string
}

// Generated is an output block the docs say a command produced:
//
//	<!-- begin generated: yank report -table FILE -->
//	```
//	...
//	```
//	<!-- end generated -->
type Generated struct {
	Ref
	Args    []string // the command after "yank"
	Content string   // the fenced block, fences included
	start   int      // byte offsets of Content in the page
	end     int
}

// Page is what one Markdown file asks of the reader.
type Page struct {
	File       string
	Text       string
	Commands   []Command
	SuiteFlags []Use // -yank.NAME
	LoneFlags  []Use // a code span that is only a flag, e.g. `-cut-at`
	Make       []Use // make TARGET
	Generated  []Generated
}

// Subcommands of yank, with their own subcommands where they have them.
var Subcommands = map[string][]string{
	"run": nil, "libvirt": nil, "map": nil, "report": {"merge"}, "bisect-run": nil, "bisect-report": nil,
	"kernel": {"list", "build", "path", "gc", "export", "import"},
	"image":  {"build", "list"},
}

var (
	fence      = regexp.MustCompile("(?m)^\\s*```")
	codeSpan   = regexp.MustCompile("`([^`]+)`")
	flagToken  = regexp.MustCompile(`^--?([A-Za-z][A-Za-z0-9_.-]*)`)
	suiteFlag  = regexp.MustCompile(`(?:^|[\s"'(=\[,])--?(yank\.[a-z][a-z0-9-]*)`)
	lone       = regexp.MustCompile(`^--?[A-Za-z][A-Za-z0-9_.-]*(?:[ =]\S+)?$`)
	beginGen   = regexp.MustCompile(`<!-- begin generated: yank ([^>]*?) -->\n`)
	endGen     = "<!-- end generated -->"
	makeTarget = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
)

// Read parses one Markdown file.
func Read(path string) (Page, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Page{}, err
	}
	return Parse(path, string(b)), nil
}

// Parse reads the commands in text (the contents of file).
func Parse(file, text string) Page {
	p := Page{File: file, Text: text}
	lineAt := func(off int) int { return 1 + strings.Count(text[:off], "\n") }
	// Fenced blocks are code line by line (a trailing \ continues a line);
	// elsewhere only `code spans` are, and they may wrap.
	locs := fence.FindAllStringIndex(text, -1)
	prose := 0
	for i := 0; i+1 < len(locs); i += 2 {
		p.scanProse(text[prose:locs[i][0]], prose, lineAt)
		body := text[locs[i][1]:locs[i+1][0]]
		if nl := strings.IndexByte(body, '\n'); nl >= 0 { // skip the info string
			body, prose = body[nl+1:], locs[i][1]+nl+1
		}
		p.scanBlock(body, prose, lineAt)
		prose = locs[i+1][1]
	}
	if len(locs)%2 == 0 {
		p.scanProse(text[prose:], prose, lineAt)
	}
	for _, m := range beginGen.FindAllStringSubmatchIndex(text, -1) {
		end := strings.Index(text[m[1]:], endGen)
		if end < 0 {
			end = len(text) - m[1]
		}
		p.Generated = append(p.Generated, Generated{
			Ref: Ref{file, lineAt(m[0])}, Args: strings.Fields(text[m[2]:m[3]]),
			Content: text[m[1] : m[1]+end], start: m[1], end: m[1] + end,
		})
	}
	return p
}

func (p *Page) scanProse(s string, base int, lineAt func(int) int) {
	for _, m := range codeSpan.FindAllStringSubmatchIndex(s, -1) {
		code := strings.Join(strings.Fields(s[m[2]:m[3]]), " ")
		p.scanCode(code, lineAt(base+m[2]))
		if lone.MatchString(code) && !strings.Contains(code, "yank.") {
			name := flagToken.FindStringSubmatch(code)[1]
			p.LoneFlags = append(p.LoneFlags, Use{Ref{p.File, lineAt(base + m[2])}, name})
		}
	}
}

func (p *Page) scanBlock(s string, base int, lineAt func(int) int) {
	off := 0
	var joined strings.Builder
	start := 0
	for _, line := range strings.SplitAfter(s, "\n") {
		if joined.Len() == 0 {
			start = off
		}
		off += len(line)
		t := strings.TrimRight(line, "\n")
		if strings.HasSuffix(t, "\\") {
			joined.WriteString(strings.TrimSuffix(t, "\\") + " ")
			continue
		}
		joined.WriteString(t)
		p.scanCode(joined.String(), lineAt(base+start))
		joined.Reset()
	}
}

// scanCode finds yank commands, suite flags and make targets in one line
// of code.
func (p *Page) scanCode(code string, line int) {
	ref := Ref{p.File, line}
	for _, m := range suiteFlag.FindAllStringSubmatch(code, -1) {
		p.SuiteFlags = append(p.SuiteFlags, Use{ref, m[1]})
	}
	tok := strings.Fields(code)
	for i := 0; i < len(tok); i++ {
		w := strings.Trim(tok[i], "`'\"()[]")
		switch {
		case (w == "yank" || strings.HasSuffix(w, "/yank")) && i+1 < len(tok):
			sub := strings.Trim(tok[i+1], "`'\"()[]")
			subs, ok := Subcommands[sub]
			if !ok {
				continue
			}
			c := Command{Ref: ref, Words: []string{sub}}
			j := i + 2
			if subs != nil && j < len(tok) && slices.Contains(subs, strings.Trim(tok[j], "`'\"()[]")) {
				c.Words = append(c.Words, strings.Trim(tok[j], "`'\"()[]"))
				j++
			}
			for ; j < len(tok) && !ends(tok[j]); j++ {
				if m := flagToken.FindStringSubmatch(strings.TrimLeft(tok[j], "[(")); m != nil {
					c.Flags = append(c.Flags, m[1])
				}
			}
			p.Commands = append(p.Commands, c)
			i = j - 1
		case w == "make":
			for j := i + 1; j < len(tok) && !ends(tok[j]); j++ {
				t := strings.Trim(tok[j], "`'\"(),.:;")
				if strings.Contains(t, "=") || strings.HasPrefix(t, "-") {
					continue
				}
				if !makeTarget.MatchString(t) {
					break
				}
				p.Make = append(p.Make, Use{ref, t})
			}
		}
	}
}

// ends says whether a token ends a shell command.
func ends(t string) bool {
	return t == "|" || t == "&&" || t == "||" || t == ";" || t == "#" || strings.HasSuffix(t, ";") || t == ">" || t == "2>&1"
}

// Rewrite replaces each generated block's content with what gen returns
// for its command, and says whether anything changed.
func (p Page) Rewrite(gen func(args []string) (string, error)) (string, bool, error) {
	var out strings.Builder
	last := 0
	for _, g := range p.Generated {
		got, err := gen(g.Args)
		if err != nil {
			return "", false, fmt.Errorf("%s: yank %s: %w", g.Ref, strings.Join(g.Args, " "), err)
		}
		out.WriteString(p.Text[last:g.start])
		out.WriteString("```\n" + strings.TrimRight(got, "\n") + "\n```\n")
		last = g.end
	}
	out.WriteString(p.Text[last:])
	return out.String(), out.String() != p.Text, nil
}

// Pages reads README.md and docs/*.md under root (the repository), but
// not docs/DESIGN.md: the recipes verified before the code existed, kept
// as written.
func Pages(root string) ([]Page, error) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files = append([]string{filepath.Join(root, "README.md")}, files...)
	sort.Strings(files[1:])
	var pages []Page
	for _, f := range files {
		if filepath.Base(f) == "DESIGN.md" {
			continue
		}
		p, err := Read(f)
		if err != nil {
			return nil, err
		}
		pages = append(pages, p)
	}
	return pages, nil
}

// MakeTargets lists the targets a Makefile defines (rules and .PHONY).
func MakeTargets(makefile string) (map[string]bool, error) {
	b, err := os.ReadFile(makefile)
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	rule := regexp.MustCompile(`(?m)^([a-z][a-z0-9_ -]*):([^=]|$)`)
	for _, m := range rule.FindAllStringSubmatch(string(b), -1) {
		for _, t := range strings.Fields(m[1]) {
			targets[t] = true
		}
	}
	return targets, nil
}
