package expect

import (
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

func TestEmbeddedManifest(t *testing.T) {
	if got := strings.Join(Default.KernelNames(), ","); got != "rfc-v3,rfc-v3-6.12,rfc-v3-virtio,rfc-v3-virtio-6.12,stock,stock-6.12" {
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
		// Any offset: a cut outside the window is MISSED, not a PASS.
		{"stock", None, "unbind-race", 500 * time.Millisecond, "HANG unbind-del_gendisk"},
		{"stock", None, "unbind-race", 4 * time.Second, "HANG unbind-del_gendisk"},
		{"stock", None, "surprise-io", 2 * time.Second, "HANG pciehp-del_gendisk in >= 50 % of >= 3 tested trials"},
		{"rfc-v3", None, "surprise-io", time.Second, "HANG pciehp-del_gendisk in >= 50 % of >= 3 tested trials"},
		{"rfc-v3-virtio", None, "surprise-io", 2 * time.Second, "PASS"},
		{"stock", None, "surprise-idle", 0, "PASS"},
		{"stock", None, "graceful-io", 7 * time.Second, "PASS"},
		{"stock", Fixed, "unbind-race", 2 * time.Second, "HANG unbind-del_gendisk"}, // manifest beats fallback
		{"/tmp/bzImage", None, "unbind-race", 2 * time.Second, "unknown"},
		{"/tmp/bzImage", Bad, "unbind-race", 2 * time.Second, "HANG unbind-del_gendisk"},
		{"/tmp/bzImage", Fixed, "unbind-race", 2 * time.Second, "PASS"},
		{"/tmp/bzImage", Fixed, "surprise-io", 9 * time.Second, "PASS"},
	} {
		if got := m.For(tc.kernel, tc.fallback, tc.sc, "", tc.offset).String(); got != tc.want {
			t.Errorf("For(%s, %s, %s, %s) = %s, want %s", tc.kernel, tc.fallback, tc.sc, tc.offset, got, tc.want)
		}
	}
}

// TestDefaultRunIsCovered: every trial a default run plans (each manifest
// kernel, each catalog scenario at its own offsets) has a rule, so none is
// reported unjudged for want of one.
func TestDefaultRunIsCovered(t *testing.T) {
	n := 0
	for _, k := range Default.KernelNames() {
		for _, sc := range scenario.All() {
			if len(sc.Offsets) == 0 {
				t.Errorf("%s has no default offsets", sc.Name)
			}
			for _, off := range sc.Offsets {
				if e := Default.For(k, None, sc.Name, "", time.Duration(off)); !e.Known {
					t.Errorf("%s %s @%s: %s", k, sc.Name, off, e.Source)
				}
				n++
			}
		}
	}
	if n < 3*4 {
		t.Errorf("only %d kernel x scenario x offset combinations checked", n)
	}
}

func TestRateRule(t *testing.T) {
	e := Default.For("stock", None, "surprise-io", "", 2*time.Second)
	if e.Rate == nil || e.Rate.MinRate != 0.5 || e.Rate.MinTrials != 3 || e.Source != "profile bad rule 2" {
		t.Fatalf("surprise-io on stock: %+v", e)
	}
	if e := Default.For("stock", None, "unbind-race", "", 2*time.Second); e.Rate != nil {
		t.Errorf("unbind-race is an exact rule: %+v", e.Rate)
	}
}

func TestAddingAFixedKernelIsOneEntry(t *testing.T) {
	b := strings.Replace(string(manifestJSON), `"kernels": {`, `"kernels": {"rfc-v3-virtio": {"expect": "fixed", "smoke": true},`, 1)
	m, err := Parse([]byte(b))
	if err != nil {
		t.Fatal(err)
	}
	// The fix is virtio-blk's: on its scenarios a fixed kernel passes
	// everything (nvme and virtio-scsi keep their own rules).
	for _, sc := range scenario.DefaultNames() {
		if e := m.For("rfc-v3-virtio", None, sc, "", 2*time.Second); e.String() != "PASS" {
			t.Errorf("%s: %s, want PASS", sc, e)
		}
	}
	if got := strings.Join(m.KernelNames(), ","); got != "rfc-v3,rfc-v3-6.12,rfc-v3-virtio,rfc-v3-virtio-6.12,stock,stock-6.12" {
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
	if e := m.For("half", None, "surprise-io", "", 2*time.Second); e.String() != "HANG pciehp-del_gendisk" || !strings.Contains(e.Source, "kernel half") {
		t.Errorf("surprise-io: %s (%s)", e, e.Source)
	}
	if e := m.For("half", None, "unbind-race", "", 2*time.Second); e.String() != "PASS" {
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

// TestParseRejectsRateRules: each error names where the rule is (kernel
// or profile, rule number, scenario) and the field at fault.
func TestParseRejectsRateRules(t *testing.T) {
	const pass = `{"scenario": "*", "outcome": "PASS"}`
	for _, tc := range []struct{ rule, want string }{
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_rate": 0, "min_trials": 3}`, "rule 2 (surprise-io): min_rate 0: want 0 < min_rate <= 1"},
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_rate": 1.5, "min_trials": 3}`, "rule 2 (surprise-io): min_rate 1.5: want 0 < min_rate <= 1"},
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_rate": -0.1, "min_trials": 3}`, "rule 2 (surprise-io): min_rate -0.1: want"},
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_rate": 0.5, "min_trials": 0}`, "rule 2 (surprise-io): min_trials 0: want at least 1"},
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_rate": 0.5}`, "rule 2 (surprise-io): min_trials: missing"},
		{`{"scenario": "surprise-io", "outcome": "HANG", "min_trials": 3}`, "rule 2 (surprise-io): min_rate: missing"},
		{`{"scenario": "surprise-io", "outcome": "PASS", "min_rate": 0.5, "min_trials": 3}`, "rule 2 (surprise-io): min_rate/min_trials: only a HANG rule"},
	} {
		for where, b := range map[string]string{
			"profile bad": `{"kernels": {}, "profiles": {"bad": [` + pass + `, ` + tc.rule + `]}}`,
			"kernel k":    `{"kernels": {"k": {"expect": "fixed", "rules": [` + pass + `, ` + tc.rule + `]}}, "profiles": {"fixed": []}}`,
		} {
			_, err := Parse([]byte(b))
			if err == nil || !strings.Contains(err.Error(), where+" "+tc.want) {
				t.Errorf("%s %s: error %v, want it to contain %q", where, tc.rule, err, where+" "+tc.want)
			}
		}
	}
	ok := `{"kernels": {}, "profiles": {"bad": [{"scenario": "surprise-io", "outcome": "HANG", "min_rate": 1, "min_trials": 1}]}}`
	if _, err := Parse([]byte(ok)); err != nil {
		t.Errorf("min_rate 1, min_trials 1 rejected: %v", err)
	}
}

func TestSmoke(t *testing.T) {
	m := Default
	for _, tc := range []struct {
		kernel, sc, anchor string
		offset             time.Duration
		want               bool
	}{
		{"stock", "unbind-race", "del_gendisk", 0, true},
		{"stock", "unbind-race", "del_gendisk", time.Millisecond, false},
		{"stock", "unbind-race", "", 0, false}, // timed at 0s is not the smoke cut
		{"stock", "unbind-race", "", 2 * time.Second, false},
		{"rfc-v3", "surprise-idle", "", 0, true},
		{"stock", "graceful-io", "virtio_queue_rq", 0, false},
		{"stock-6.12", "unbind-race", "del_gendisk", 0, false}, // not a smoke kernel
		{"/my/bzImage", "unbind-race", "del_gendisk", 0, true},
	} {
		if got := m.IsSmoke(tc.kernel, tc.sc, tc.anchor, tc.offset); got != tc.want {
			t.Errorf("IsSmoke(%s, %s, %q, %s) = %v", tc.kernel, tc.sc, tc.anchor, tc.offset, got)
		}
	}
}

func TestJudge(t *testing.T) {
	hang := Expectation{Known: true, Outcome: scenario.Hang, Classification: "unbind-del_gendisk", Source: "test"}
	rate := Expectation{Known: true, Outcome: scenario.Hang, Classification: "pciehp-del_gendisk", Rate: &RateRule{0.5, 3}, Source: "test"}
	pass := Expectation{Known: true, Outcome: scenario.Pass, Source: "test"}
	unknown := Expectation{Source: "no bad rule covers x at 9s"}
	v := func(o scenario.Outcome, class string) scenario.Verdict {
		return scenario.Verdict{Outcome: o, Classification: class, Reason: "r"}
	}
	missed := v(scenario.Missed, "")
	missed.Window = &scenario.WindowEvidence{Reason: "the trigger had already finished 20ms before the cut"}
	for _, tc := range []struct {
		name string
		e    Expectation
		v    scenario.Verdict
		want Status
		msg  string // a part of the message
	}{
		{"hang as expected", hang, v(scenario.Hang, "unbind-del_gendisk"), Met, ""},
		{"hang, wrong task", hang, v(scenario.Hang, "pciehp-del_gendisk"), Problem, "got HANG pciehp-del_gendisk"},
		{"known-bad passed", hang, v(scenario.Pass, ""), Problem, "expected HANG unbind-del_gendisk (test), got PASS"},
		{"fixed passed", pass, v(scenario.Pass, ""), Met, ""},
		{"fixed hung", pass, v(scenario.Hang, "unbind-del_gendisk"), Problem, "got HANG"},
		{"crash never ok", pass, v(scenario.Crash, ""), Problem, "CRASH"},
		{"infra never ok", hang, v(scenario.InfraError, ""), Problem, "INFRA-ERROR"},
		{"missed", hang, missed, NotJudged, "not tested: the trigger had already finished"},
		{"missed, no window", pass, v(scenario.Missed, ""), NotJudged, "not tested: r"},
		{"unknown hang", unknown, v(scenario.Hang, "other-d-state"), NotJudged, "no bad rule covers x at 9s"},
		{"unknown pass", unknown, v(scenario.Pass, ""), NotJudged, "no bad rule covers"},
		{"unknown missed", unknown, missed, NotJudged, "not tested"},
		{"unknown crash", unknown, v(scenario.Crash, ""), Problem, "CRASH"},
		{"unknown infra", unknown, v(scenario.InfraError, ""), Problem, "INFRA-ERROR"},
		// Under a rate rule one trial is met either way; the cell is judged later.
		{"rate: hang", rate, v(scenario.Hang, "pciehp-del_gendisk"), Met, ""},
		{"rate: pass", rate, v(scenario.Pass, ""), Met, ""},
		{"rate: recovered is not hung", rate, v(scenario.Recovered, ""), Met, ""},
		{"recovered where a HANG is expected", hang, v(scenario.Recovered, ""), Problem, "got RECOVERED"},
		{"recovered as expected", Expectation{Known: true, Outcome: scenario.Recovered, Source: "test"}, v(scenario.Recovered, ""), Met, ""},
		{"rate: wrong task", rate, v(scenario.Hang, "other-d-state"), Problem, "got HANG other-d-state"},
		{"rate: crash", rate, v(scenario.Crash, ""), Problem, "CRASH"},
		{"rate: missed", rate, missed, NotJudged, "not tested"},
	} {
		j := tc.e.Judge(tc.v)
		if j.Status != tc.want || !strings.Contains(j.Message, tc.msg) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, j.Status, j.Message, tc.want, tc.msg)
		}
		if (j.Err() != nil) != (tc.want == Problem) {
			t.Errorf("%s: Err() = %v", tc.name, j.Err())
		}
	}
}

func TestRateRuleJudge(t *testing.T) {
	rr := RateRule{MinRate: 0.5, MinTrials: 3}
	outcomes := func(s ...scenario.Outcome) scenario.Rate { return scenario.RateOf(s) }
	H, P, M, C := scenario.Hang, scenario.Pass, scenario.Missed, scenario.Crash
	for _, tc := range []struct {
		name string
		r    scenario.Rate
		want Status
		msg  string
	}{
		{"all hung", outcomes(H, H, H), Met, "3/3 hung (100 %, 95 % CI 44-100 %): at least 50 %"},
		{"half", outcomes(H, P, H, P), Met, "2/4 hung"},
		{"too few", outcomes(H, P, M, M), NotJudged, "2 tested, the rate rule needs 3"},
		{"missed do not count", outcomes(H, M, M, M, M), NotJudged, "4 missed: 1 tested"},
		{"below", outcomes(H, P, P), Problem, "1/3 hung (33 %, 95 % CI 6-79 %): below the rate rule's 50 %"},
		{"crash is tested, not hung", outcomes(H, C, C), Problem, "1/3 hung"},
		{"nothing", outcomes(), NotJudged, "nothing tested: 0 tested"},
	} {
		j := rr.Judge(tc.r)
		if j.Status != tc.want || !strings.Contains(j.Message, tc.msg) {
			t.Errorf("%s: %s %q, want %s with %q", tc.name, j.Status, j.Message, tc.want, tc.msg)
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

// A rule can hold for one cut only: the fixed kernels hang
// virtio-scsi-unbind-race when cut at blk_execute_rq (the flush is in
// flight at the disconnect), and pass it cut earlier or timed.
func TestRuleByCut(t *testing.T) {
	for _, tc := range []struct {
		anchor string
		want   string
	}{
		{"blk_execute_rq", "HANG other-d-state"},
		{"del_gendisk", "PASS"},
		{"", "PASS"},
	} {
		if got := Default.For("rfc-v3-virtio", None, "virtio-scsi-unbind-race", tc.anchor, 0).String(); got != tc.want {
			t.Errorf("cut at %q: %s, want %s", tc.anchor, got, tc.want)
		}
	}
	bad := `{"kernels": {}, "profiles": {"bad": [{"scenario": "surprise-io", "cut_at": "ksys_sync+16", "outcome": "PASS"}]}}`
	if _, err := Parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "cut_at") {
		t.Errorf("a bad cut_at: %v", err)
	}
}
