package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/yank-dev/yank/internal/doccheck"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the docs' generated output blocks (make docs)")

// repoRoot is where README.md is: the tests run in cmd/yank.
const repoRoot = "../.."

// flagsOf asks a subcommand for its -h and reads the flag names it lists,
// so the docs are checked against the flag sets the binary really has.
func flagsOf(t *testing.T, words []string) map[string]bool {
	t.Helper()
	var out, errOut bytes.Buffer
	_ = dispatch(context.Background(), append(slices.Clone(words), "-h"), &out, &errOut)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--?([A-Za-z][\w.-]*)`).FindAllStringSubmatch(out.String()+errOut.String(), -1) {
		names[m[1]] = true
	}
	if len(names) == 0 {
		t.Fatalf("yank %s -h lists no flags:\n%s%s", strings.Join(words, " "), out.String(), errOut.String())
	}
	names["h"], names["help"] = true, true
	return names
}

// allFlags is every flag of every subcommand, by subcommand name.
func allFlags(t *testing.T) map[string]map[string]bool {
	all := map[string]map[string]bool{}
	for sub, subs := range doccheck.Subcommands {
		if subs == nil || doccheck.Runnable[sub] {
			all[sub] = flagsOf(t, []string{sub})
		}
		for _, s := range subs {
			if sub == "kernel" && (s == "export" || s == "import") && !hasKernelSub(s) {
				continue
			}
			all[sub+" "+s] = flagsOf(t, []string{sub, s})
		}
	}
	return all
}

func hasKernelSub(s string) bool { return strings.Contains(kernelUsage, "yank kernel "+s) }

// The commands the docs tell a reader to type: every `yank SUB -flag`
// must be a flag of SUB, every `make TARGET` a Makefile target, and every
// lone `-flag` in a code span a flag of some yank subcommand or of the
// test tools the docs show (go test, ginkgo). -yank.* flags are checked in
// suites/internal/flags, where they are defined.
func TestDocsCommands(t *testing.T) {
	pages, err := doccheck.Pages(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	flags := allFlags(t)
	targets, err := doccheck.MakeTargets(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		for _, msg := range check(p, flags, targets) {
			t.Error(msg)
		}
	}
}

// toolFlags are flags of other tools the docs show beside yank's.
var toolFlags = map[string]bool{
	"run": true, "count": true, "p": true, "v": true, "short": true, "race": true, "timeout": true, "bench": true, "benchtime": true, "fuzz": true, "fuzztime": true, "args": true, "json": true, // go test
	"label-filter": true, "procs": true, "json-report": true, "junit-report": true, "output-dir": true, "seed": true, "focus": true, "keep-going": true, "dry-run": true, // ginkgo
}

func check(p doccheck.Page, flags map[string]map[string]bool, targets map[string]bool) []string {
	var errs []string
	union := map[string]bool{}
	for _, fs := range flags {
		for f := range fs {
			union[f] = true
		}
	}
	for _, c := range p.Commands {
		fs, ok := flags[c.Name()]
		if !ok {
			if len(c.Words) == 1 && doccheck.Subcommands[c.Words[0]] != nil && !doccheck.Runnable[c.Words[0]] {
				continue // `yank kernel` alone, as a name in prose
			}
			errs = append(errs, c.Ref.String()+": yank "+c.Name()+": no such subcommand")
			continue
		}
		for _, f := range c.Flags {
			if !fs[f] {
				errs = append(errs, c.Ref.String()+": yank "+c.Name()+" has no flag -"+f+" (see yank "+c.Name()+" -h)")
			}
		}
	}
	for _, m := range p.Make {
		if !targets[m.Name] {
			errs = append(errs, m.Ref.String()+": make "+m.Name+": no such target in the Makefile")
		}
	}
	for _, f := range p.LoneFlags {
		if !union[f.Name] && !toolFlags[f.Name] {
			errs = append(errs, f.Ref.String()+": -"+f.Name+" is a flag of no yank subcommand")
		}
	}
	return errs
}

// The checker fails on a misspelt flag, an unknown subcommand and a
// missing make target (a test that could not fail would prove nothing).
func TestDocsCheckCatchesMistakes(t *testing.T) {
	flags := allFlags(t)
	targets := map[string]bool{"run": true, "test": true}
	p := doccheck.Parse("bad.md", "Run `yank run -kernels stock -cut-att del_gendisk`, then\n"+
		"```sh\nyank kernel build -timings \\\n  -jobs 2 stock\nmake tset\n```\n"+
		"and `-anchor-budjet`; `yank frobnicate` is prose, `make run` fine.\n")
	got := strings.Join(check(p, flags, targets), "\n")
	for _, want := range []string{
		"bad.md:1: yank run has no flag -cut-att",
		"bad.md:3: yank kernel build has no flag -jobs",
		"bad.md:5: make tset: no such target",
		"bad.md:7: -anchor-budjet is a flag of no yank subcommand",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("checker missed %q; it said:\n%s", want, got)
		}
	}
	if n := len(check(p, flags, targets)); n != 4 {
		t.Errorf("want exactly 4 complaints, got %d:\n%s", n, got)
	}
}

// Output shown in the docs is regenerated from recorded trials
// (docs/examples/) by the command its marker names; `make docs` rewrites
// the blocks, and this test fails when a block and its command disagree.
func TestDocsGenerated(t *testing.T) {
	pages, err := doccheck.Pages(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, p := range pages {
		blocks += len(p.Generated)
		text, changed, err := p.Rewrite(func(args []string) (string, error) {
			var out, errOut bytes.Buffer
			args = slices.Clone(args)
			for i, a := range args { // paths in markers are from the repository root
				if strings.HasPrefix(a, "docs/") {
					args[i] = filepath.Join(repoRoot, a)
				}
			}
			if err := dispatch(context.Background(), args, &out, &errOut); err != nil {
				return "", err
			}
			return out.String(), nil
		})
		if err != nil {
			t.Error(err)
			continue
		}
		if !changed {
			continue
		}
		if *updateDocs {
			if err := os.WriteFile(p.File, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: generated blocks rewritten", p.File)
			continue
		}
		t.Errorf("%s: a generated block is not what its command prints now; run make docs", p.File)
	}
	if blocks == 0 {
		t.Error("no generated blocks in README.md or docs/: the make run example should be one")
	}
}
