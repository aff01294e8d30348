package hotunplug_test

import (
	"fmt"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/internal/judge"
	"github.com/yank-dev/yank/suites/plan"
)

// The suite's resolved knobs and its planned trials, set before RunSpecs
// builds the spec tree from them.
var (
	cfg    config
	trials []plan.Trial
)

// After every trial, on process 1: each cell's hang rate (as yank.rate
// report entries on this node) and the rate rules judged on them.
var _ = ReportAfterSuite(judge.RatesNode, judge.Rates)

// smokeFilter is the label filter when none is given and -yank.matrix is
// not set: the subset that fits CI's time budget.
const smokeFilter = "smoke"

func TestHotunplug(t *testing.T) {
	RegisterFailHandler(Fail)
	suiteConfig, reporterConfig := GinkgoConfiguration()
	var err error
	if cfg, err = loadConfig(suiteConfig.RandomSeed); err != nil {
		t.Fatalf("hotunplug suite: %v", err)
	}
	if trials, err = plan.Build(cfg.opts); err != nil {
		t.Fatalf("hotunplug suite: %v", err)
	}
	if trials, err = shardOf(trials, cfg.shard); err != nil {
		t.Fatalf("hotunplug suite: %v", err)
	}
	// One seed for yank's jitter and Ginkgo's order, which shuffles every
	// spec (not just containers) so trial order is not kernel by kernel.
	suiteConfig.RandomSeed = cfg.opts.Seed
	suiteConfig.RandomizeAllSpecs = true
	// A plain `go test` runs the smoke subset; a dry run lists everything,
	// and a label filter or focus given by the user means what it says.
	chosen := suiteConfig.LabelFilter != "" || len(suiteConfig.FocusStrings) > 0 || len(suiteConfig.FocusFiles) > 0
	if !chosen && !cfg.matrix && !suiteConfig.DryRun {
		suiteConfig.LabelFilter = smokeFilter
	}
	// The knobs are checked above in every lane; the trials boot guests.
	e2e.Require(t)
	RunSpecs(t, fmt.Sprintf("hotunplug (seed %d)", cfg.opts.Seed), suiteConfig, reporterConfig)
}

// shardOf keeps shard s's trials: the split yank run -shard makes.
func shardOf(trials []plan.Trial, s scenario.ShardSpec) ([]plan.Trial, error) {
	if s.N <= 1 {
		return trials, nil
	}
	planned := make([]scenario.Planned, len(trials))
	for i, t := range trials {
		planned[i] = t.Planned()
	}
	var out []plan.Trial
	for _, i := range scenario.Shard(planned, s) {
		out = append(out, trials[i])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-yank.shard %s: the plan's %d trials fill fewer shards than %d", s, len(trials), s.N)
	}
	fmt.Printf("hotunplug: shard %s: %d of the plan's %d trials\n", s, len(out), len(trials))
	return out, nil
}
