// Command testsummary reads `go test -json` on stdin and prints what a
// plain `go test` would (each package's ok/FAIL line, and the output of
// failed tests only), then every package's time and the slowest tests, so
// `make test` says where its minutes went. With -o FILE it also keeps the
// raw JSON. It exits 1 when a test or package failed.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of test2json's output (go doc test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type result struct {
	name    string
	elapsed time.Duration
}

func main() {
	keep := flag.String("o", "", "also write the raw go test -json stream here")
	top := flag.Int("top", 10, "how many of the slowest tests to list")
	flag.Parse()
	var raw io.Writer = io.Discard
	if *keep != "" {
		f, err := os.Create(*keep)
		if err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(2)
		}
		defer f.Close()
		raw = f
	}
	failed, pkgs, tests := summarize(os.Stdin, os.Stdout, raw)
	report(os.Stdout, pkgs, tests, *top)
	if failed {
		os.Exit(1)
	}
}

// summarize echoes the stream the way plain go test prints it and returns
// whether anything failed, the packages' and the top-level tests' times.
func summarize(in io.Reader, out, raw io.Writer) (failed bool, pkgs, tests []result) {
	buffered := map[string][]string{} // package/test -> its output so far
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fmt.Fprintf(raw, "%s\n", line)
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			fmt.Fprintf(out, "%s\n", line) // build errors and the like
			continue
		}
		key := e.Package + "/" + e.Test
		switch {
		case e.Test == "" && e.Action == "output":
			// A package's own lines: ok/FAIL, panics outside tests. The
			// verbose-mode chatter of the tests is in their events.
			if o := e.Output; !strings.HasPrefix(o, "=== ") && !strings.HasPrefix(o, "--- ") && !strings.HasPrefix(o, "PASS\n") && !strings.HasPrefix(o, "    ") {
				fmt.Fprint(out, o)
			}
		case e.Test == "" && (e.Action == "pass" || e.Action == "fail"):
			pkgs = append(pkgs, result{e.Package, seconds(e.Elapsed)})
			failed = failed || e.Action == "fail"
		case e.Action == "output":
			buffered[key] = append(buffered[key], e.Output)
		case e.Action == "pass" || e.Action == "skip":
			if e.Action == "pass" && !strings.Contains(e.Test, "/") {
				tests = append(tests, result{e.Package + " " + e.Test, seconds(e.Elapsed)})
			}
			delete(buffered, key)
		case e.Action == "fail":
			failed = true
			fmt.Fprint(out, strings.Join(buffered[key], ""))
			delete(buffered, key)
			if !strings.Contains(e.Test, "/") {
				tests = append(tests, result{e.Package + " " + e.Test + " (FAIL)", seconds(e.Elapsed)})
			}
		}
	}
	return failed, pkgs, tests
}

func report(w io.Writer, pkgs, tests []result, top int) {
	var total time.Duration
	for _, p := range pkgs {
		total += p.elapsed
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].elapsed > pkgs[j].elapsed })
	sort.Slice(tests, func(i, j int) bool { return tests[i].elapsed > tests[j].elapsed })
	fmt.Fprintf(w, "\ntime per package (sum %s; packages overlap under -p 2):\n", total.Round(time.Second))
	for _, p := range pkgs {
		if p.elapsed >= time.Second {
			fmt.Fprintf(w, "  %7s  %s\n", p.elapsed.Round(time.Second), p.name)
		}
	}
	fmt.Fprintf(w, "slowest %d tests:\n", min(top, len(tests)))
	for _, t := range tests[:min(top, len(tests))] {
		fmt.Fprintf(w, "  %7s  %s\n", t.elapsed.Round(100*time.Millisecond), t.name)
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
