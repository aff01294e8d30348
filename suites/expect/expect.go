// Package expect holds what yank knows about each kernel: which scenarios
// hang at which offsets, with which classification, and which must pass.
// The knowledge is data (expectations.json, embedded), so a new kernel
// variant is one line: {"rfc-v3-virtio": {"expect": "fixed", "smoke": true}}.
package expect

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

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

// Rule says what a scenario yields over a range of nominal offsets.
type Rule struct {
	Scenario       string             `json:"scenario"` // a scenario name or "*"
	From           *scenario.Duration `json:"from,omitempty"`
	To             *scenario.Duration `json:"to,omitempty"`
	Outcome        scenario.Outcome   `json:"outcome"`
	Classification string             `json:"classification,omitempty"`
}

func (r Rule) matches(sc string, offset time.Duration) bool {
	if r.Scenario != "*" && r.Scenario != sc {
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

// SmokeTrial is one scenario at one offset in the CI smoke subset.
type SmokeTrial struct {
	Scenario string            `json:"scenario"`
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
// in the scenario catalog and every outcome must be PASS or HANG.
func Parse(b []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	checkRules := func(where string, rules []Rule) error {
		for _, r := range rules {
			if r.Scenario != "*" {
				if _, err := scenario.Lookup(r.Scenario); err != nil {
					return fmt.Errorf("%s: %w", where, err)
				}
			}
			switch r.Outcome {
			case scenario.Pass:
				if r.Classification != "" {
					return fmt.Errorf("%s: %s: a PASS has no classification", where, r.Scenario)
				}
			case scenario.Hang:
			default:
				return fmt.Errorf("%s: %s: outcome %q: want PASS or HANG", where, r.Scenario, r.Outcome)
			}
			if r.From != nil && r.To != nil && *r.From > *r.To {
				return fmt.Errorf("%s: %s: from %s is after to %s", where, r.Scenario, r.From, r.To)
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

// Expectation is what one trial must yield. Known is false when nothing is
// known (then only CRASH and INFRA-ERROR fail).
type Expectation struct {
	Known          bool
	Outcome        scenario.Outcome
	Classification string
	Source         string // where it came from, for failure messages
}

func (e Expectation) String() string {
	switch {
	case !e.Known:
		return "unknown"
	case e.Classification != "":
		return string(e.Outcome) + " " + e.Classification
	}
	return string(e.Outcome)
}

// For returns the expectation for a kernel at a scenario and nominal
// offset. A kernel missing from the manifest gets the class fallback
// (-yank.expect); with None, nothing is known.
func (m *Manifest) For(kernel string, fallback Class, sc string, offset time.Duration) Expectation {
	k, ok := m.Kernels[kernel]
	if !ok {
		k = Kernel{Expect: fallback}
	}
	if k.Expect == None || k.Expect == "" {
		return Expectation{Source: "kernel " + kernel + " has no expectations (-yank.expect=bad|fixed sets some)"}
	}
	for i, r := range k.Rules {
		if r.matches(sc, offset) {
			return Expectation{true, r.Outcome, r.Classification, fmt.Sprintf("kernel %s rule %d", kernel, i+1)}
		}
	}
	for i, r := range m.Profiles[k.Expect] {
		if r.matches(sc, offset) {
			return Expectation{true, r.Outcome, r.Classification, fmt.Sprintf("profile %s rule %d", k.Expect, i+1)}
		}
	}
	return Expectation{Source: fmt.Sprintf("no %s rule covers %s at %s", k.Expect, sc, offset)}
}

// IsSmoke reports whether a trial belongs to the CI smoke subset: the
// scenario at that nominal offset is in the smoke list and the kernel is
// marked smoke (or is not in the manifest: a user's own kernel).
func (m *Manifest) IsSmoke(kernel, sc string, offset time.Duration) bool {
	if k, ok := m.Kernels[kernel]; ok && !k.Smoke {
		return false
	}
	for _, s := range m.Smoke {
		if s.Scenario == sc && time.Duration(s.Offset) == offset {
			return true
		}
	}
	return false
}

// Check compares a verdict with the expectation: nil when it is met. An
// INFRA-ERROR or CRASH is never met; with no expectation, anything else is.
func (e Expectation) Check(v scenario.Verdict) error {
	switch v.Outcome {
	case scenario.InfraError:
		return fmt.Errorf("INFRA-ERROR: the trial could not be judged: %s", v.Reason)
	case scenario.Crash:
		return fmt.Errorf("CRASH: %s", v.Summary())
	}
	if !e.Known {
		return nil
	}
	if v.Outcome != e.Outcome {
		return fmt.Errorf("expected %s (%s), got %s: %s", e, e.Source, v.Outcome, v.Summary())
	}
	if e.Classification != "" && v.Classification != e.Classification {
		return fmt.Errorf("expected %s (%s), got HANG %s: %s", e, e.Source, v.Classification, v.Summary())
	}
	return nil
}
