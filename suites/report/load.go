package report

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

// Input is what the loaders found.
type Input struct {
	Records []Record
	Seeds   []int64  // the suite seeds (or none for yank run dirs)
	Sources []string // the files or dirs read
}

func (in *Input) add(o Input) {
	in.Records = append(in.Records, o.Records...)
	for _, s := range o.Seeds {
		if !containsSeed(in.Seeds, s) {
			in.Seeds = append(in.Seeds, s)
		}
	}
	in.Sources = append(in.Sources, o.Sources...)
}

func containsSeed(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Load reads each path: a Ginkgo JSON report (a .json file) or a dir of
// trial artifacts holding verdict.json files (yank run, the suite's
// -yank.artifacts).
func Load(paths ...string) (Input, error) {
	var in Input
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return in, err
		}
		var one Input
		if st.IsDir() {
			one, err = LoadVerdicts(p)
		} else {
			one, err = LoadGinkgo(p)
		}
		if err != nil {
			return in, fmt.Errorf("%s: %w", p, err)
		}
		in.add(one)
	}
	return in, nil
}

// LoadGinkgo reads a Ginkgo JSON report (--json-report) of the hotunplug
// suite.
func LoadGinkgo(path string) (Input, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Input{}, err
	}
	var reports []types.Report
	if err := json.Unmarshal(b, &reports); err != nil {
		return Input{}, fmt.Errorf("not a Ginkgo JSON report: %w", err)
	}
	in, err := FromReports(reports)
	in.Sources = []string{path}
	return in, err
}

// FromReports finds the trials in Ginkgo reports: read back from JSON, or
// live in a ReportAfterSuite. A spec that ended without a Record (it timed
// out or panicked before the trial returned) still counts, as a trial
// with no verdict, rebuilt from its labels; a skipped spec counts only
// when it ran a trial (it was not judged), not when a filter left it out.
func FromReports(reports []types.Report) (Input, error) {
	var in Input
	for _, r := range reports {
		for _, sr := range r.SpecReports {
			for _, e := range sr.ReportEntries {
				if e.Name == "yank.seed" {
					if s, err := strconv.ParseInt(entryJSON(e), 10, 64); err == nil && !containsSeed(in.Seeds, s) {
						in.Seeds = append(in.Seeds, s)
					}
				}
			}
			if sr.LeafNodeType != types.NodeTypeIt || sr.State.Is(types.SpecStatePending) {
				continue
			}
			rec, ok, err := recordOf(sr)
			if err != nil {
				return in, fmt.Errorf("spec %q: %w", sr.FullText(), err)
			}
			if !ok {
				continue // not a yank trial
			}
			in.Records = append(in.Records, rec)
		}
	}
	return in, nil
}

// entryJSON is a report entry's value as JSON. Entries read back from a
// report (or sent by another parallel process) have it; an entry added in
// this process holds only the Go value.
func entryJSON(e types.ReportEntry) string {
	if e.Value.AsJSON != "" {
		return e.Value.AsJSON
	}
	b, err := json.Marshal(e.GetRawValue())
	if err != nil {
		return ""
	}
	return string(b)
}

func recordOf(sr types.SpecReport) (Record, bool, error) {
	var rec Record
	found := false
	for _, e := range sr.ReportEntries {
		if e.Name == EntryName {
			if err := json.Unmarshal([]byte(entryJSON(e)), &rec); err != nil {
				return rec, false, err
			}
			found = true
		}
	}
	if !found {
		if sr.State.Is(types.SpecStateSkipped) {
			return rec, false, nil // filtered out: never ran
		}
		labels := map[string]string{}
		for _, l := range sr.Labels() {
			if k, v, ok := strings.Cut(l, ":"); ok {
				labels[k] = v
			}
		}
		if labels["kernel"] == "" || labels["scenario"] == "" {
			return rec, false, nil
		}
		off, _ := time.ParseDuration(labels["offset"])
		rec = Record{Kernel: labels["kernel"], Scenario: labels["scenario"], Removal: labels["removal"], Offset: scenario.Duration(off)}
		if a := labels["cut-at"]; a != "" && a != scenario.CutTimed {
			rec.Anchor = a
		}
	}
	rec.Spec = sr.LeafNodeText
	rec.State = sr.State.String()
	if sr.State.Is(types.SpecStateFailureStates) && rec.Problem == "" {
		rec.Problem = sr.State.String() + ": " + firstLine(sr.Failure.Message)
	}
	if sr.State.Is(types.SpecStateSkipped) && rec.NotJudged == "" && rec.Problem == "" {
		rec.NotJudged = "skipped: " + firstLine(sr.Failure.Message)
	}
	return rec, true, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// LoadVerdicts reads every verdict.json under dir. The expectation comes
// from the embedded manifest (kernels missing from it: unknown).
func LoadVerdicts(dir string) (Input, error) {
	in := Input{Sources: []string{dir}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "verdict.json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		v, err := DecodeVerdict(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if v.Artifacts == "" {
			v.Artifacts = filepath.Dir(p)
		}
		in.Records = append(in.Records, recordFromVerdict(v, filepath.Base(filepath.Dir(p))))
		return nil
	})
	return in, err
}

// recordFromVerdict makes a Record of a bare verdict; trialDir is the name
// of its dir ("2s-r3" in yank run and suite trees) for the repeat number.
func recordFromVerdict(v scenario.Verdict, trialDir string) Record {
	rec := Record{Kernel: v.Kernel, Scenario: v.Scenario, Offset: v.RequestedOffset, Verdict: v, Repeat: 1}
	if v.Anchor != nil {
		rec.Anchor = v.Anchor.Spec
	}
	if sc, err := scenario.Lookup(v.Scenario); err == nil {
		rec.Removal = string(sc.Removal)
	}
	if i := strings.LastIndex(trialDir, "-r"); i >= 0 {
		if n, err := strconv.Atoi(trialDir[i+2:]); err == nil {
			rec.Repeat = n
		}
		// "<offset>" or "<anchor>+<delay>" (scenario.CutLabel).
		cut := trialDir[:i]
		if rec.Anchor != "" {
			cut = strings.TrimPrefix(cut, scenario.SafeName(rec.Anchor)+"+")
		}
		if d, err := time.ParseDuration(cut); err == nil {
			rec.Offset = scenario.Duration(d) // the nominal offset, if the suite jittered it
		}
	}
	rec.Judge(expect.Default.For(v.Kernel, expect.None, v.Scenario, rec.Anchor, time.Duration(rec.Offset)))
	return rec
}
