// Package expect holds what yank knows about each kernel: which scenarios
// hang at which offsets, with which classification, and which must pass.
// The knowledge is data (expectations.json, embedded), so a new kernel
// variant is one line: {"rfc-v3-virtio": {"expect": "fixed", "smoke": true}}.
package expect

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/anchor"
	"github.com/yank-dev/yank/scenario"
)

// Class is what a kernel is known to be.
type Class string

const (
	Bad   Class = "bad"   // hangs where the "bad" profile says
	Fixed Class = "fixed" // must pass everything
	None  Class = "none"  // unknown kernel: report verdicts, fail only on CRASH or INFRA-ERROR
)

// ParseClass reads a -yank.expect value.
func ParseClass(s string) (Class, error) {
	switch c := Class(strings.ToLower(strings.TrimSpace(s))); c {
	case Bad, Fixed, None:
		return c, nil
	case "":
		return None, nil
	}
	return "", fmt.Errorf("expectation %q: want bad, fixed or none", s)
}

// Kernel is a manifest entry for a kernel variant.
type Kernel struct {
	Expect Class  `json:"expect"`
	Smoke  bool   `json:"smoke"` // part of the CI smoke run
	Note   string `json:"note,omitempty"`
	// Rules are checked before the profile's, for a kernel that differs
	// from its class somewhere.
	Rules []Rule `json:"rules,omitempty"`
}

// Rule says what a scenario yields over a range of nominal offsets. An
// exact rule judges every trial. A rate rule (min_rate and min_trials,
// HANG only) is for a race the kernel loses only most of the time: the
// cell (kernel, scenario, offset) must HANG with the classification in
// at least MinRate of its tested trials, judged once it has MinTrials.
type Rule struct {
	Scenario string             `json:"scenario"` // a scenario name or "*"
	From     *scenario.Duration `json:"from,omitempty"`
	To       *scenario.Duration `json:"to,omitempty"`
	// CutAt limits the rule to trials cut at this anchor ("offset": timed
	// cuts only; "": any cut). From and To are then delays after it.
	CutAt          string           `json:"cut_at,omitempty"`
	Outcome        scenario.Outcome `json:"outcome"`
	Classification string           `json:"classification,omitempty"`
	// Pointers, so that an explicit 0 is rejected instead of meaning
	// "exact rule".
	MinRate   *float64 `json:"min_rate,omitempty"`
	MinTrials *int     `json:"min_trials,omitempty"`
	Note      string   `json:"note,omitempty"` // why the rule says so
}

// RateRule is a rate rule's threshold.
type RateRule struct {
	MinRate   float64 `json:"min_rate"`
	MinTrials int     `json:"min_trials"`
}

func (r RateRule) String() string {
	return fmt.Sprintf("in >= %s of >= %d tested trials", percent(r.MinRate), r.MinTrials)
}

func percent(f float64) string { return strconv.FormatFloat(100*f, 'f', -1, 64) + " %" }

// rate is the rule's threshold, nil for an exact rule.
func (r Rule) rate() *RateRule {
	if r.MinRate == nil {
		return nil
	}
	return &RateRule{MinRate: *r.MinRate, MinTrials: *r.MinTrials}
}

// check validates one rule; where names it ("profile bad rule 2").
func (r Rule) check(where string) error {
	where = fmt.Sprintf("%s (%s)", where, r.Scenario)
	if r.Scenario != "*" {
		if _, err := scenario.Lookup(r.Scenario); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	switch r.Outcome {
	case scenario.Pass:
		if r.Classification != "" {
			return fmt.Errorf("%s: classification: a PASS has none", where)
		}
	case scenario.Hang:
	case scenario.Recovered:
		if r.Classification != "" {
			return fmt.Errorf("%s: classification: a RECOVERED has none", where)
		}
	default:
		return fmt.Errorf("%s: outcome %q: want PASS, HANG or RECOVERED", where, r.Outcome)
	}
	if r.CutAt != "" && r.CutAt != scenario.CutTimed {
		if _, err := anchor.Parse(r.CutAt); err != nil {
			return fmt.Errorf("%s: cut_at: %v, or %q for timed cuts", where, err, scenario.CutTimed)
		}
	}
	if r.From != nil && r.To != nil && *r.From > *r.To {
		return fmt.Errorf("%s: from %s is after to %s", where, r.From, r.To)
	}
	if r.MinRate == nil && r.MinTrials == nil {
		return nil
	}
	switch {
	case r.Outcome != scenario.Hang:
		return fmt.Errorf("%s: min_rate/min_trials: only a HANG rule has a rate", where)
	case r.MinRate == nil:
		return fmt.Errorf("%s: min_rate: missing (a rate rule needs min_rate and min_trials)", where)
	case r.MinTrials == nil:
		return fmt.Errorf("%s: min_trials: missing (a rate rule needs min_rate and min_trials)", where)
	case !(*r.MinRate > 0 && *r.MinRate <= 1): // also rejects NaN
		return fmt.Errorf("%s: min_rate %v: want 0 < min_rate <= 1", where, *r.MinRate)
	case *r.MinTrials < 1:
		return fmt.Errorf("%s: min_trials %d: want at least 1", where, *r.MinTrials)
	}
	return nil
}

func (r Rule) matches(sc, anchor string, offset time.Duration) bool {
	if r.Scenario != "*" && r.Scenario != sc {
		return false
	}
	if r.CutAt != "" && r.CutAt != cmp.Or(anchor, scenario.CutTimed) {
		return false
	}
	if r.From != nil && offset < time.Duration(*r.From) {
		return false
	}
	if r.To != nil && offset > time.Duration(*r.To) {
		return false
	}
	return true
}

// SmokeTrial is one scenario at one cut in the CI smoke subset: Offset
// after T0, or after Anchor's hit for an anchored cut.
type SmokeTrial struct {
	Scenario string            `json:"scenario"`
	Anchor   string            `json:"anchor,omitempty"`
	Offset   scenario.Duration `json:"offset"`
}

// Manifest is expectations.json.
type Manifest struct {
	Kernels  map[string]Kernel `json:"kernels"`
	Profiles map[Class][]Rule  `json:"profiles"`
	Smoke    []SmokeTrial      `json:"smoke"`
}

//go:embed expectations.json
var manifestJSON []byte

// Default is the embedded manifest.
var Default = mustParse(manifestJSON)

func mustParse(b []byte) *Manifest {
	m, err := Parse(b)
	if err != nil {
		panic("expect: embedded expectations.json: " + err.Error())
	}
	return m
}

// Parse reads and validates a manifest: every scenario it names must exist
// in the scenario catalog, every outcome must be PASS or HANG and a rate
// rule must be a HANG with 0 < min_rate <= 1 and min_trials >= 1.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	checkRules := func(where string, rules []Rule) error {
		for i, r := range rules {
			if err := r.check(fmt.Sprintf("%s rule %d", where, i+1)); err != nil {
				return err
			}
		}
		return nil
	}
	for c, rules := range m.Profiles {
		if c != Bad && c != Fixed {
			return nil, fmt.Errorf("profile %q: want bad or fixed", c)
		}
		if err := checkRules("profile "+string(c), rules); err != nil {
			return nil, err
		}
	}
	for name, k := range m.Kernels {
		if _, ok := m.Profiles[k.Expect]; !ok {
			return nil, fmt.Errorf("kernel %s: expect %q has no profile (want bad or fixed)", name, k.Expect)
		}
		if err := checkRules("kernel "+name, k.Rules); err != nil {
			return nil, err
		}
	}
	for _, s := range m.Smoke {
		if _, err := scenario.Lookup(s.Scenario); err != nil {
			return nil, fmt.Errorf("smoke: %w", err)
		}
	}
	return &m, nil
}

// KernelNames lists the manifest's kernels, sorted: the default matrix.
func (m *Manifest) KernelNames() []string {
	var n []string
	for k := range m.Kernels {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// IsSmoke reports whether a trial belongs to the CI smoke subset: the
// scenario at that cut (anchor, "" timed, and nominal offset) is in the
// smoke list and the kernel is marked smoke (or is not in the manifest:
// a user's own kernel).
func (m *Manifest) IsSmoke(kernel, sc, anchor string, offset time.Duration) bool {
	if k, ok := m.Kernels[kernel]; ok && !k.Smoke {
		return false
	}
	for _, s := range m.Smoke {
		if s.Scenario == sc && s.Anchor == anchor && time.Duration(s.Offset) == offset {
			return true
		}
	}
	return false
}

// Expectation is what one trial must yield. Known is false when nothing is
// known (then only CRASH and INFRA-ERROR are judged).
type Expectation struct {
	Known          bool
	Outcome        scenario.Outcome
	Classification string
	Rate           *RateRule // nil: an exact rule
	// Source is the rule ("profile bad rule 2") or, when nothing is
	// known, why not.
	Source string
}

func (e Expectation) String() string {
	if !e.Known {
		return "unknown"
	}
	s := string(e.Outcome)
	if e.Classification != "" {
		s += " " + e.Classification
	}
	if e.Rate != nil {
		s += " " + e.Rate.String()
	}
	return s
}

// For returns the expectation for a kernel at a scenario and nominal
// offset. A kernel missing from the manifest gets the class fallback
// (-yank.expect); with None, nothing is known.
func (m *Manifest) For(kernel string, fallback Class, sc, anchor string, offset time.Duration) Expectation {
	k, ok := m.Kernels[kernel]
	if !ok {
		k = Kernel{Expect: fallback}
	}
	if k.Expect == None || k.Expect == "" {
		return Expectation{Source: "kernel " + kernel + " has no expectations (-yank.expect=bad|fixed sets some)"}
	}
	found := func(r Rule, source string) Expectation {
		return Expectation{Known: true, Outcome: r.Outcome, Classification: r.Classification, Rate: r.rate(), Source: source}
	}
	for i, r := range k.Rules {
		if r.matches(sc, anchor, offset) {
			return found(r, fmt.Sprintf("kernel %s rule %d", kernel, i+1))
		}
	}
	for i, r := range m.Profiles[k.Expect] {
		if r.matches(sc, anchor, offset) {
			return found(r, fmt.Sprintf("profile %s rule %d", k.Expect, i+1))
		}
	}
	return Expectation{Source: fmt.Sprintf("no %s rule covers %s at %s", k.Expect, sc, offset)}
}

// Status is a judgement's kind.
type Status string

const (
	Met       Status = "met"
	Problem   Status = "problem"    // the kernel did not do what it should, or yank failed
	NotJudged Status = "not judged" // the trial (or cell) says nothing either way
)

// Judgement is a verdict (or a cell's rate) held against an expectation.
type Judgement struct {
	Status  Status `json:"status"`
	Message string `json:"message,omitempty"` // the problem, or why not judged
}

// Err is the problem as an error, nil otherwise: the pass/fail view.
func (j Judgement) Err() error {
	if j.Status != Problem {
		return nil
	}
	return errors.New(j.Message)
}

func problem(format string, args ...any) Judgement {
	return Judgement{Problem, fmt.Sprintf(format, args...)}
}

// Judge holds one verdict against the expectation. INFRA-ERROR and CRASH
// are always problems; a MISSED trial tested nothing and a trial no rule
// covers has nothing to be held against: both are not judged. Under a
// rate rule a PASS, or a HANG with the right classification, is met for
// the trial: the cell's rate is judged (RateRule.Judge) once the cell is
// complete.
func (e Expectation) Judge(v scenario.Verdict) Judgement {
	switch v.Outcome {
	case scenario.InfraError:
		return problem("INFRA-ERROR: the trial could not be judged: %s", v.Reason)
	case scenario.Crash:
		return problem("CRASH: %s", v.Summary())
	case scenario.Missed:
		reason := v.Reason
		if v.Window != nil {
			reason = v.Window.Reason
		}
		return Judgement{NotJudged, "not tested: " + reason}
	case scenario.Unreached:
		return Judgement{NotJudged, "not tested (no cut): " + v.Reason}
	}
	if !e.Known {
		return Judgement{NotJudged, e.Source}
	}
	if e.Rate != nil && (v.Outcome == scenario.Pass || v.Outcome == scenario.Recovered) {
		// Not hung: the cell's rate is what the rule judges.
		return Judgement{Status: Met}
	}
	if v.Outcome != e.Outcome {
		return problem("expected %s (%s), got %s: %s", e, e.Source, v.Outcome, v.Summary())
	}
	if e.Classification != "" && v.Classification != e.Classification {
		return problem("expected %s (%s), got HANG %s: %s", e, e.Source, v.Classification, v.Summary())
	}
	return Judgement{Status: Met}
}

// Judge holds a cell's hang rate against the rule: not judged below
// MinTrials tested trials, a problem below MinRate. The message starts
// with the rate and its interval.
func (rr RateRule) Judge(r scenario.Rate) Judgement {
	switch {
	case r.Tested < rr.MinTrials:
		return Judgement{NotJudged, fmt.Sprintf("%s: %d tested, the rate rule needs %d", r, r.Tested, rr.MinTrials)}
	case r.Value() < rr.MinRate:
		return problem("%s: below the rate rule's %s", r, percent(rr.MinRate))
	}
	return Judgement{Met, fmt.Sprintf("%s: at least %s", r, percent(rr.MinRate))}
}
