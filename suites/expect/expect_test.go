package expect

import (
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

func TestEmbeddedManifest(t *testing.T) {
	if got := strings.Join(Default.KernelNames(), ","); got != "rfc-v3,rfc-v3-virtio,stock" {
		t.Errorf("kernels = %s", got)
	}
	if len(Default.Smoke) == 0 {
		t.Error("no smoke trials")
	}
}

func TestFor(t *testing.T) {
	m := Default
	for _, tc := range []struct {
		kernel   string
		fallback Class
		sc       string
		offset   time.Duration
		want     string
	}{
		{"stock", None, "unbind-race", 2 * time.Second, "HANG unbind-del_gendisk"},
		{"stock", None, "unbind-race", time.Second, "HANG unbind-del_gendisk"},
		{"rfc-v3", None, "unbind-race", 1500 * time.Millisecond, "HANG unbind-del_gendisk"},
		{"stock", None, "unbind-race", 500 * time.Millisecond, "unknown"}, // outside the measured range
		{"stock", None, "unbind-race", 4 * time.Second, "unknown"},
		{"stock", None, "surprise-io", 2 * time.Second, "HANG pciehp-del_gendisk"},
		{"stock", None, "surprise-io", time.Second, "unknown"},
		{"stock", None, "surprise-idle", 0, "PASS"},
		{"stock", None, "graceful-io", 7 * time.Second, "PASS"},
		{"stock", Fixed, "unbind-race", 2 * time.Second, "HANG unbind-del_gendisk"}, // manifest beats fallback
		{"/tmp/bzImage", None, "unbind-race", 2 * time.Second, "unknown"},
		{"/tmp/bzImage", Bad, "unbind-race", 2 * time.Second, "HANG unbind-del_gendisk"},
		{"/tmp/bzImage", Fixed, "unbind-race", 2 * time.Second, "PASS"},
		{"/tmp/bzImage", Fixed, "surprise-io", 9 * time.Second, "PASS"},
	} {
		if got := m.For(tc.kernel, tc.fallback, tc.sc, tc.offset).String(); got != tc.want {
			t.Errorf("For(%s, %s, %s, %s) = %s, want %s", tc.kernel, tc.fallback, tc.sc, tc.offset, got, tc.want)
		}
	}
}

func TestAddingAFixedKernelIsOneEntry(t *testing.T) {
	b := strings.Replace(string(manifestJSON), `"kernels": {`, `"kernels": {"rfc-v3-virtio": {"expect": "fixed", "smoke": true},`, 1)
	m, err := Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenario.Names() {
		if e := m.For("rfc-v3-virtio", None, sc, 2*time.Second); e.String() != "PASS" {
			t.Errorf("%s: %s, want PASS", sc, e)
		}
	}
	if got := strings.Join(m.KernelNames(), ","); got != "rfc-v3,rfc-v3-virtio,stock" {
		t.Errorf("kernels = %s", got)
	}
}

func TestKernelRulesComeFirst(t *testing.T) {
	b := strings.Replace(string(manifestJSON), `"kernels": {`,
		`"kernels": {"half": {"expect": "fixed", "rules": [{"scenario": "surprise-io", "outcome": "HANG", "classification": "pciehp-del_gendisk"}]},`, 1)
	m, err := Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	if e := m.For("half", None, "surprise-io", 2*time.Second); e.String() != "HANG pciehp-del_gendisk" || !strings.Contains(e.Source, "kernel half") {
		t.Errorf("surprise-io: %s (%s)", e, e.Source)
	}
	if e := m.For("half", None, "unbind-race", 2*time.Second); e.String() != "PASS" {
		t.Errorf("unbind-race: %s", e)
	}
}

func TestParseRejects(t *testing.T) {
	for name, b := range map[string]string{
		"unknown scenario": `{"kernels": {}, "profiles": {"bad": [{"scenario": "nope", "outcome": "HANG"}]}}`,
		"bad outcome":      `{"kernels": {}, "profiles": {"bad": [{"scenario": "*", "outcome": "CRASH"}]}}`,
		"pass with class":  `{"kernels": {}, "profiles": {"bad": [{"scenario": "*", "outcome": "PASS", "classification": "x"}]}}`,
		"no profile":       `{"kernels": {"k": {"expect": "weird"}}, "profiles": {}}`,
		"reversed range":   `{"kernels": {}, "profiles": {"bad": [{"scenario": "*", "from": "2s", "to": "1s", "outcome": "HANG"}]}}`,
		"typo field":       `{"kernels": {"k": {"expct": "bad"}}, "profiles": {}}`,
		"smoke scenario":   `{"kernels": {}, "profiles": {}, "smoke": [{"scenario": "nope", "offset": "1s"}]}`,
	} {
		if _, err := Parse([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSmoke(t *testing.T) {
	m := Default
	for _, tc := range []struct {
		kernel, sc string
		offset     time.Duration
		want       bool
	}{
		{"stock", "unbind-race", 2 * time.Second, true},
		{"stock", "unbind-race", time.Second, false},
		{"rfc-v3", "surprise-idle", 0, true},
		{"stock", "graceful-io", 2 * time.Second, false},
		{"/my/bzImage", "unbind-race", 2 * time.Second, true},
	} {
		if got := m.IsSmoke(tc.kernel, tc.sc, tc.offset); got != tc.want {
			t.Errorf("IsSmoke(%s, %s, %s) = %v", tc.kernel, tc.sc, tc.offset, got)
		}
	}
}

func TestCheck(t *testing.T) {
	hang := Expectation{Known: true, Outcome: scenario.Hang, Classification: "unbind-del_gendisk", Source: "test"}
	pass := Expectation{Known: true, Outcome: scenario.Pass, Source: "test"}
	unknown := Expectation{}
	v := func(o scenario.Outcome, class string) scenario.Verdict {
		return scenario.Verdict{Outcome: o, Classification: class, Reason: "r"}
	}
	for _, tc := range []struct {
		name string
		e    Expectation
		v    scenario.Verdict
		ok   bool
	}{
		{"hang as expected", hang, v(scenario.Hang, "unbind-del_gendisk"), true},
		{"hang, wrong task", hang, v(scenario.Hang, "pciehp-del_gendisk"), false},
		{"known-bad passed", hang, v(scenario.Pass, ""), false},
		{"fixed passed", pass, v(scenario.Pass, ""), true},
		{"fixed hung", pass, v(scenario.Hang, "unbind-del_gendisk"), false},
		{"crash never ok", pass, v(scenario.Crash, ""), false},
		{"infra never ok", hang, v(scenario.InfraError, ""), false},
		{"unknown hang ok", unknown, v(scenario.Hang, "other-d-state"), true},
		{"unknown pass ok", unknown, v(scenario.Pass, ""), true},
		{"unknown crash", unknown, v(scenario.Crash, ""), false},
		{"unknown infra", unknown, v(scenario.InfraError, ""), false},
	} {
		if err := tc.e.Check(tc.v); (err == nil) != tc.ok {
			t.Errorf("%s: Check = %v", tc.name, err)
		}
	}
}

func TestParseClass(t *testing.T) {
	for in, want := range map[string]Class{"": None, "bad": Bad, "FIXED": Fixed, "none": None} {
		if got, err := ParseClass(in); err != nil || got != want {
			t.Errorf("ParseClass(%q) = %s, %v", in, got, err)
		}
	}
	if _, err := ParseClass("good"); err == nil {
		t.Error("accepted good")
	}
}
