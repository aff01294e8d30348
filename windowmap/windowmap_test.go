package windowmap

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// window is a model of a scenario: a cut at delay d is inside when
// open <= d < close, then the kernel under test decides (bad: HANG,
// fixed: PASS); outside it is MISSED. blur makes the n-th trial of a
// probe within blur of close miss on odd trials: an edge that is not
// sharp, deterministically.
type window struct {
	open, close, blur time.Duration
	fixed             bool
	calls             []time.Duration
	firsts            []int
}

func (w *window) run(_ context.Context, d time.Duration, n, first int) ([]scenario.Outcome, error) {
	w.calls = append(w.calls, d)
	w.firsts = append(w.firsts, first)
	var out []scenario.Outcome
	for i := 0; i < n; i++ {
		inside := d >= w.open && d < w.close
		if w.blur > 0 && d >= w.close-w.blur && d < w.close+w.blur {
			inside = (first+i)%2 == 0
		}
		switch {
		case !inside:
			out = append(out, scenario.Missed)
		case w.fixed:
			out = append(out, scenario.Pass)
		default:
			out = append(out, scenario.Hang)
		}
	}
	return out, nil
}

func TestSweepFindsASharpEnd(t *testing.T) {
	w := &window{close: 733 * time.Millisecond}
	m, err := Sweep(context.Background(), w.run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Start.Found || m.Start.Inside != 0 {
		t.Errorf("start %+v, want open at 0", m.Start)
	}
	in, out := time.Duration(m.End.Inside), time.Duration(m.End.Outside)
	if !m.End.Found || in >= 733*time.Millisecond || out < 733*time.Millisecond || out-in > 10*time.Millisecond {
		t.Errorf("end %+v, want 733ms bracketed to within 10ms", m.End)
	}
	// 0 and 2s, then bisection of 2s down to 10ms: 8 probes more, each
	// decided by its first batch of 5 (the model is sharp).
	if len(m.Probes) != 10 || m.Trials != 50 {
		t.Errorf("%d probes, %d trials; want 10 and 50", len(m.Probes), m.Trials)
	}
	for i := 1; i < len(m.Probes); i++ {
		if m.Probes[i].Delay <= m.Probes[i-1].Delay {
			t.Fatalf("probes not sorted by delay: %v then %v", m.Probes[i-1].Delay, m.Probes[i].Delay)
		}
	}
	// Trial numbers never repeat across probes (their evidence dirs).
	for i := 1; i < len(w.firsts); i++ {
		if w.firsts[i] != w.firsts[i-1]+5 {
			t.Errorf("call %d numbered from %d after %d", i, w.firsts[i], w.firsts[i-1])
		}
	}
	var tab bytes.Buffer
	WriteTable(&tab, m)
	if !strings.Contains(tab.String(), "window end:   closes between ") || !strings.Contains(tab.String(), "100 % (57-100 %)") {
		t.Errorf("table:\n%s", tab.String())
	}
}

func TestSweepWindowOpeningLater(t *testing.T) {
	w := &window{open: 150 * time.Millisecond, close: 900 * time.Millisecond, fixed: true}
	m, err := Sweep(context.Background(), w.run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	si, so := time.Duration(m.Start.Inside), time.Duration(m.Start.Outside)
	if !m.Start.Found || si < 150*time.Millisecond || so >= 150*time.Millisecond || si-so > 10*time.Millisecond {
		t.Errorf("start %+v, want 150ms bracketed", m.Start)
	}
	if ei, eo := time.Duration(m.End.Inside), time.Duration(m.End.Outside); !m.End.Found || ei >= 900*time.Millisecond || eo < 900*time.Millisecond {
		t.Errorf("end %+v, want 900ms bracketed", m.End)
	}
	for _, p := range m.Probes {
		if p.Rate.Hangs != 0 {
			t.Errorf("a fixed kernel hung at %s", p.Delay)
		}
	}
}

// An edge that is not sharp stops the bisection there, with the probe's
// full MaxTrials run and the edge reported as not found.
func TestSweepBlurredEdge(t *testing.T) {
	w := &window{close: 700 * time.Millisecond, blur: 300 * time.Millisecond}
	m, err := Sweep(context.Background(), w.run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.End.Found || !strings.Contains(m.End.Note, "blurred at") {
		t.Errorf("end %+v, want not found: blurred", m.End)
	}
	var blurred *Probe
	for i := range m.Probes {
		if m.Probes[i].State == Blurred {
			blurred = &m.Probes[i]
		}
	}
	if blurred == nil || len(blurred.Outcomes) != 10 {
		t.Fatalf("no blurred probe of 10 trials: %+v", m.Probes)
	}
}

func TestSweepStillOpenAtTheLongestDelay(t *testing.T) {
	w := &window{close: time.Hour}
	m, err := Sweep(context.Background(), w.run, Options{MaxDelay: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if m.End.Found || !strings.Contains(m.End.Note, "still open at 10s") {
		t.Errorf("end %+v", m.End)
	}
	if got := w.calls; len(got) != 4 || got[1] != 4*time.Second || got[2] != 8*time.Second || got[3] != 10*time.Second {
		t.Errorf("probed %v, want 0s 4s 8s 10s", got)
	}
}

func TestSweepErrors(t *testing.T) {
	infra := func(context.Context, time.Duration, int, int) ([]scenario.Outcome, error) {
		return []scenario.Outcome{scenario.InfraError, scenario.Pass, scenario.Pass, scenario.Pass, scenario.Pass}, nil
	}
	if _, err := Sweep(context.Background(), infra, Options{}); err == nil || !strings.Contains(err.Error(), "1 INFRA-ERROR") {
		t.Errorf("an INFRA-ERROR at delay 0: %v", err)
	}
	boom := errors.New("qemu died")
	failing := func(context.Context, time.Duration, int, int) ([]scenario.Outcome, error) { return nil, boom }
	if _, err := Sweep(context.Background(), failing, Options{}); !errors.Is(err, boom) {
		t.Errorf("a runner error: %v", err)
	}
	w := &window{open: time.Hour, close: 2 * time.Hour}
	m, err := Sweep(context.Background(), w.run, Options{})
	if err != nil || m.Start.Found || !strings.Contains(m.Start.Note, "never inside") {
		t.Errorf("no window: %+v, %v", m.Start, err)
	}
	for _, o := range []Options{{MaxDelay: 11 * time.Second}, {Resolution: time.Microsecond}, {Batch: 3}, {Batch: 5, MaxTrials: 4}} {
		if err := o.Check(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestPlot(t *testing.T) {
	w := &window{close: 733 * time.Millisecond}
	m, _ := Sweep(context.Background(), w.run, Options{})
	var page bytes.Buffer
	if err := HTML(&page, "stock unbind-race", "yank map -kernels stock", m); err != nil {
		t.Fatal(err)
	}
	s := page.String()
	for _, want := range []string{"<svg", `stroke="#d62728"`, `stroke="#7f7f7f"`, "stroke-dasharray", "window end:"} {
		if !strings.Contains(s, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}
