package report

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/joshdk/go-junit"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/scenario"
)

// Command is `yank report` (and `go run ./suites/cmd/report`): it writes
// the HTML matrix report from Ginkgo JSON reports and/or dirs of
// verdict.json files, and checks a JUnit report with a real JUnit parser
// when asked.
func Command(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "report.html", "HTML file to write")
	title := fs.String("title", "yank matrix", "page title")
	table := fs.String("table", "", "print the text tables of this matrix.json (or the artifacts dir of yank run or yank libvirt holding it) and write no HTML")
	kcidb := fs.String("kcidb", "", "also write the trials as a KCIDB I/O v5 report (JSON) to this file (the suites' results: give their Ginkgo JSON report)")
	kcidbOrigin := fs.String("kcidb-origin", "yank", "the KCIDB origin (your CI system's name: a-z, 0-9, _) the report's ids are under")
	junitFile := fs.String("junit", "", "also parse this JUnit XML report and print its totals (fails if it does not parse)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: yank report [-o report.html] [-junit junit.xml] REPORT.json|ARTIFACTS-DIR...\n"+
			"       yank report -table MATRIX.json|ARTIFACTS-DIR\n\n"+
			"Reads Ginkgo JSON reports of suites/hotunplug (--json-report) and dirs of trial\n"+
			"artifacts (verdict.json files, e.g. from yank run) and writes an HTML page: per\n"+
			"scenario a kernel x offset heatmap of hang rates with trial counts, and every\n"+
			"trial's verdict, stuck stack and evidence files.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := engine.CheckKCIDBOrigin(*kcidbOrigin); err != nil {
		return fmt.Errorf("report: -kcidb-origin: %w", err)
	}
	if *table != "" {
		if fs.NArg() > 0 {
			return fmt.Errorf("report: -table prints one matrix.json; unexpected %q", fs.Args())
		}
		rows, err := engine.ReadMatrix(*table)
		if err != nil {
			return fmt.Errorf("report: -table: %w", err)
		}
		engine.WriteTable(stdout, rows)
		return nil
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("report: give at least one Ginkgo JSON report or artifacts dir")
	}
	if *junitFile != "" {
		suites, err := junit.IngestFile(*junitFile)
		if err != nil {
			return fmt.Errorf("report: %s is not valid JUnit: %w", *junitFile, err)
		}
		var t junit.Totals
		for _, s := range suites {
			t.Tests += s.Totals.Tests
			t.Passed += s.Totals.Passed
			t.Failed += s.Totals.Failed
			t.Skipped += s.Totals.Skipped
			t.Error += s.Totals.Error
		}
		fmt.Fprintf(stdout, "junit %s: %d suites, %d tests: %d passed, %d failed, %d errors, %d skipped\n",
			*junitFile, len(suites), t.Tests, t.Passed, t.Failed, t.Error, t.Skipped)
	}
	in, err := Load(fs.Args()...)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if len(in.Records) == 0 {
		return fmt.Errorf("report: no trials found in %v", fs.Args())
	}
	if *kcidb != "" {
		if err := writeKCIDB(*kcidb, *kcidbOrigin, in.Records); err != nil {
			return fmt.Errorf("report: -kcidb %s: %w", *kcidb, err)
		}
	}
	m := Build(in, filepath.Dir(*out))
	m.Title = *title
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := Render(f, m); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var counts []string
	for _, o := range append(scenario.Outcomes, "") {
		if n := m.Totals[o]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, cmp.Or(string(o), "no verdict")))
		}
	}
	fmt.Fprintf(stdout, "report %s: %d trials (%s), %d unexpected, %d not judged, %d cell(s) below their rate rule\n",
		*out, m.Total, strings.Join(counts, ", "), m.Problems, m.NotJudged, len(m.RateProblems()))
	WriteRates(stdout, m.Rates)
	WriteTimings(stdout, m.Timings)
	return nil
}

// writeKCIDB writes the records (a suite run's trials, or verdict.json
// dirs) as KCIDB, ids under the run's seed.
func writeKCIDB(file, origin string, recs []Record) error {
	rows := make([]engine.Row, len(recs))
	seed := int64(0)
	for i, r := range recs {
		rows[i] = engine.Row{Kernel: r.Kernel, Offset: r.Offset, Anchor: r.Anchor, Rep: r.Repeat, Verdict: r.Verdict, Host: "-"}
		rows[i].Verdict.Scenario = cmp.Or(r.Verdict.Scenario, r.Scenario) // a spec with no verdict
		seed = cmp.Or(seed, r.Seed)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := engine.WriteKCIDB(f, rows, origin, fmt.Sprintf("seed%d", seed)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
