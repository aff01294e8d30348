package plan

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/kernels/kernelstest"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/suites/expect"
)

func TestParseKernels(t *testing.T) {
	dir := t.TempDir()
	bz := kernelstest.FakeBzImage(t, dir, "6.12.117 (yank@yank) #1 SMP")
	ks, err := ParseKernels(" stock, rfc-v3,mine=" + bz + "," + bz + ",")
	if err != nil {
		t.Fatal(err)
	}
	var names, versions []string
	for _, k := range ks {
		names, versions = append(names, k.Name), append(versions, k.Version)
	}
	want := []string{"stock", "rfc-v3", "mine", strings.ReplaceAll(strings.TrimPrefix(bz, "/"), "/", "_")}
	if !slices.Equal(names, want) {
		t.Errorf("names %v, want %v", names, want)
	}
	if !slices.Equal(versions, []string{"6.1", "6.1", "6.12", "6.12"}) {
		t.Errorf("versions %v", versions)
	}
	if ks[2].Ref() != "mine="+bz || ks[2].Spec.BzImage != bz || ks[0].Spec.Variant != "stock" {
		t.Errorf("specs: %+v %+v", ks[2].Spec, ks[0].Spec)
	}
	tr := Trial{Kernel: ks[2], Scenario: scenario.Scenario{Name: "x"}}
	if !slices.Contains(tr.Labels(), "linux:6.12") {
		t.Errorf("labels %v lack linux:6.12", tr.Labels())
	}
	for _, bad := range []string{"stock,stock", "a/b=/x", "=/x", "nope", "/no/such/bzImage"} {
		if _, err := ParseKernels(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func options(t *testing.T) Options {
	var scs []scenario.Scenario
	for _, n := range []string{"unbind-race", "surprise-idle"} {
		sc, err := scenario.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		scs = append(scs, sc)
	}
	return Options{
		Kernels:   []Kernel{{Name: "stock"}, {Name: "mine", Spec: kernels.Spec{Name: "mine", BzImage: "/x/bzImage"}}},
		Scenarios: scs, Repeats: 2, Seed: 42,
	}
}

func TestBuildExpandsAndLabels(t *testing.T) {
	trials, err := Build(options(t))
	if err != nil {
		t.Fatal(err)
	}
	// 2 kernels x (unbind-race at its anchor, del_gendisk+0s, +
	// surprise-idle timed at 0s) x 2 repeats.
	if len(trials) != 8 {
		t.Fatalf("%d trials, want 8", len(trials))
	}
	names := map[string]bool{}
	for _, tr := range trials {
		if names[tr.Name()] {
			t.Errorf("duplicate spec %s", tr.Name())
		}
		names[tr.Name()] = true
	}
	find := func(trials []Trial, name string) Trial {
		for _, tr := range trials {
			if tr.Name() == name {
				return tr
			}
		}
		t.Fatalf("no trial %s in %v", name, names)
		return Trial{}
	}
	s := find(trials, "stock unbind-race @del_gendisk+0s #1")
	if got := strings.Join(s.Labels(), " "); got != "kernel:stock scenario:unbind-race removal:surprise offset:0s cut-at:del_gendisk expect:bad smoke" {
		t.Errorf("labels: %s", got)
	}
	if s.Expect.String() != "HANG unbind-del_gendisk" {
		t.Errorf("expect: %s", s.Expect)
	}
	if p := s.Planned(); p.Anchor != "del_gendisk" || p.Offset != 0 {
		t.Errorf("planned: %+v", p)
	}
	m := find(trials, "mine surprise-idle @0s #1")
	if m.Expect.Known || m.Class != expect.None || !m.Smoke || m.Anchor != "" {
		t.Errorf("user kernel: %+v", m)
	}
	if got := strings.Join(m.Labels(), " "); !strings.Contains(got, "cut-at:offset") {
		t.Errorf("timed labels: %s", got)
	}

	// -yank.cut-at=offset: every scenario timed, at its own offsets.
	o := options(t)
	o.CutAt = scenario.CutTimed
	timed, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(timed) != 12 { // unbind-race at 1s,2s + surprise-idle at 0s
		t.Fatalf("timed: %d trials, want 12", len(timed))
	}
	for _, tr := range timed {
		names[tr.Name()] = true
	}
	if s := find(timed, "stock unbind-race @2s #1"); s.Smoke || s.Anchor != "" {
		t.Errorf("timed 2s: smoke %v anchor %q (the smoke cut is anchored)", s.Smoke, s.Anchor)
	}

	// -yank.cut-at=blk_execute_rq@2 with delays: every scenario anchored.
	o.CutAt, o.Offsets = "blk_execute_rq@2", []time.Duration{0, time.Millisecond}
	at, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != 16 {
		t.Fatalf("anchored: %d trials, want 16", len(at))
	}
	for _, tr := range at {
		names[tr.Name()] = true
	}
	find(at, "mine surprise-idle @blk_execute_rq@2+1ms #2")
	o.Offsets = []time.Duration{20 * time.Second}
	if _, err := Build(o); err == nil || !strings.Contains(err.Error(), "after anchor") {
		t.Errorf("a 20s delay after an anchor: %v", err)
	}
}

func TestJitter(t *testing.T) {
	o := options(t)
	o.Jitter = 100 * time.Millisecond
	a, _ := Build(o)
	b, _ := Build(o)
	moved := 0
	for i := range a {
		if a[i].Offset != b[i].Offset {
			t.Fatal("jitter not reproducible")
		}
		d := a[i].Offset - a[i].Nominal
		if a[i].Nominal > 0 && (d < -o.Jitter || d > o.Jitter) {
			t.Errorf("%s: jitter %s out of range", a[i].Name(), d)
		}
		if a[i].Offset < 0 {
			t.Errorf("%s: negative offset", a[i].Name())
		}
		if d != 0 {
			moved++
			if !strings.Contains(a[i].Name(), "(at ") {
				t.Errorf("%s: jittered name lacks the actual offset", a[i].Name())
			}
		}
	}
	if moved == 0 {
		t.Error("nothing jittered")
	}
	o.Seed++
	c, _ := Build(o)
	same := 0
	for i := range a {
		if a[i].Offset == c[i].Offset {
			same++
		}
	}
	if same == len(a) {
		t.Error("another seed, the same jitter")
	}
}

func TestBuildRejects(t *testing.T) {
	o := options(t)
	o.Repeats = 0
	if _, err := Build(o); err == nil {
		t.Error("0 repeats accepted")
	}
	o = options(t)
	o.Kernels = nil
	if _, err := Build(o); err == nil {
		t.Error("no kernels accepted")
	}
}

// TestTrialsCarryTheRateRule: a surprise-io trial on a known-bad kernel
// is judged by its cell's hang rate, so its expectation holds the rule.
func TestTrialsCarryTheRateRule(t *testing.T) {
	o := options(t)
	sc, err := scenario.Lookup("surprise-io")
	if err != nil {
		t.Fatal(err)
	}
	o.Scenarios = []scenario.Scenario{sc}
	o.Fallback = expect.Fixed
	trials, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range trials {
		switch tr.Kernel.Name {
		case "stock":
			if r := tr.Expect.Rate; r == nil || r.MinRate != 0.5 || r.MinTrials != 3 {
				t.Errorf("%s: rate rule %+v", tr.Name(), r)
			}
		case "mine": // a user's kernel with -yank.expect=fixed: exact PASS
			if tr.Expect.Rate != nil || tr.Expect.String() != "PASS" {
				t.Errorf("%s: %s", tr.Name(), tr.Expect)
			}
		}
	}
}
