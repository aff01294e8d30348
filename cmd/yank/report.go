package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/suites/report"
)

// reportCmd is `yank report`: the HTML matrix report (see suites/report),
// or `yank report merge`: shards joined into one report.
func reportCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "merge" {
		return reportMerge(args[1:], stdout, stderr)
	}
	return report.Command(args, stdout, stderr)
}

// reportMerge joins the artifacts dirs of every shard of one plan (each
// from yank run or yank libvirt -shard K/N) into one matrix.json,
// matrix.txt, HTML heatmap and JUnit file.
func reportMerge(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("report merge", stderr, "usage: yank report merge [-o DIR] SHARD-DIR...\n\n"+
		"Joins the artifacts dirs of the shards of one plan (yank run or yank libvirt\n"+
		"with -shard K/N) into DIR: matrix.json, matrix.txt, report.html (the heatmap,\n"+
		"linking each shard's evidence) and junit.xml. Shards of different plans (their\n"+
		"plan digests differ), a missing shard or one given twice are errors.\n\n")
	out := fs.String("o", "", "dir to write the merged report to (default ./artifacts/merged-<time>)")
	title := fs.String("title", "yank matrix", "the HTML page's title")
	kcidb := fs.String("kcidb", "", "also write the merged results as a KCIDB I/O v5 report (JSON) to this file")
	kcidbOrigin := fs.String("kcidb-origin", "yank", "the KCIDB origin the report's ids are under (as the shards' -kcidb-origin)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("report merge: give the artifacts dir of every shard")
	}
	if err := engine.CheckKCIDBOrigin(*kcidbOrigin); err != nil {
		return fmt.Errorf("report merge: -kcidb-origin: %w", err)
	}
	var shards []engine.Matrix
	for _, d := range fs.Args() {
		m, err := engine.ReadMatrixFile(d)
		if err != nil {
			return fmt.Errorf("report merge: %w", err)
		}
		shards = append(shards, m)
	}
	merged, err := engine.Merge(shards, fs.Args())
	if err != nil {
		return fmt.Errorf("report %w", err)
	}
	dir := *out
	if dir == "" {
		dir = filepath.Join("artifacts", "merged-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("report merge: %w", err)
	}
	if err := engine.WriteReport(dir, merged.Rows, *merged.Plan); err != nil {
		return fmt.Errorf("report merge: %w", err)
	}
	if err := writeFileWith(filepath.Join(dir, "junit.xml"), func(w io.Writer) error { return engine.WriteJUnit(w, merged.Rows) }); err != nil {
		return fmt.Errorf("report merge: junit.xml: %w", err)
	}
	in, err := report.Load(fs.Args()...)
	if err != nil {
		return fmt.Errorf("report merge: %w", err)
	}
	m := report.Build(in, dir)
	m.Title = *title
	if err := writeFileWith(filepath.Join(dir, "report.html"), func(w io.Writer) error { return report.Render(w, m) }); err != nil {
		return fmt.Errorf("report merge: report.html: %w", err)
	}
	if err := writeKCIDBFile(*kcidb, *kcidbOrigin, merged.Rows, merged.Plan.Digest); err != nil {
		return fmt.Errorf("report merge: %w", err)
	}
	engine.WriteTable(stdout, merged.Rows)
	fmt.Fprintf(stdout, "\nmerged %d shards of plan %s (%d trials): %s (matrix.json, matrix.txt, report.html, junit.xml)\n",
		len(shards), merged.Plan.Digest, len(merged.Rows), dir)
	return nil
}

func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
