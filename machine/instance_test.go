package machine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/guestagent"
)

// A backend outside this package builds its Machine with NewMachine and an
// Instance; these tests run one that starts nothing.

type fakeInstance struct {
	m              *Machine
	killed, closed int
}

func (f *fakeInstance) DialAgent(ctx context.Context, log *slog.Logger) (*guestagent.Client, error) {
	return guestagent.DialTransport(ctx, pingTransport{}, guestagent.WithLogger(log))
}
func (f *fakeInstance) Kill()                   { f.killed++; f.m.ReportExit(errors.New("killed")) }
func (f *fakeInstance) Close() error            { f.closed++; return nil }
func (f *fakeInstance) DiagnosticsName() string { return "fake log" }

// pingTransport answers every agent request with an empty return.
type pingTransport struct{}

func (pingTransport) RoundTrip(context.Context, []byte) ([]byte, error) {
	return []byte(`{"return":{}}`), nil
}
func (pingTransport) Close() error { return nil }

type instanceBackend struct {
	console string
	inst    *fakeInstance
}

func (b *instanceBackend) Name() string { return "fake" }
func (b *instanceBackend) Start(ctx context.Context, spec Spec, opts Options) (*Machine, error) {
	m, err := NewMachine(spec, opts, b)
	if err != nil {
		return nil, err
	}
	b.inst = &fakeInstance{m: m}
	m.Attach(b.inst)
	go m.Console.Feed(strings.NewReader(b.console))
	m.Started = time.Now()
	return m, nil
}

func fakeSpec(t *testing.T) Spec {
	t.Setenv("YANK_RUNTIME_DIR", t.TempDir())
	dir := t.TempDir()
	for _, f := range []string{"bzImage", "initrd"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return HotplugGuest("fake", filepath.Join(dir, "bzImage"), filepath.Join(dir, "initrd"))
}

func TestBootThroughAnInstance(t *testing.T) {
	b := &instanceBackend{console: "Linux version x\n" + ReadyMarker + "\n"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Boot(ctx, fakeSpec(t), Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if m.Agent == nil || m.Backend != b || m.Spec.MemoryMB != 512 {
		t.Fatalf("machine: agent %v, backend %v, spec %+v", m.Agent, m.Backend, m.Spec)
	}
	if st, err := os.Stat(m.Paths.Dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("runtime dir %s: %v %v", m.Paths.Dir, st, err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if b.inst.killed != 1 || b.inst.closed != 1 || !m.Exited() {
		t.Fatalf("after Close: killed %d, closed %d, exited %v; want 1, 1, true", b.inst.killed, b.inst.closed, m.Exited())
	}
	if _, err := os.Stat(m.Paths.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("runtime dir left: %v", err)
	}
}

func TestDeathThroughAnInstanceIsReported(t *testing.T) {
	b := &instanceBackend{console: "Kernel panic - not syncing\n"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Start(ctx, fakeSpec(t), Options{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Diagnostics().Write([]byte("domain crashed\n"))
	m.ReportExit(errors.New("exit status 1"))
	err = m.WaitReady(ctx)
	for _, want := range []string{"died during boot", "exit status 1", "fake log:", "domain crashed", "Kernel panic"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("WaitReady: got %v, want it to mention %q", err, want)
		}
	}
	if m.Kill(); b.inst.killed != 0 {
		t.Fatal("Kill of an exited machine reached the instance")
	}
}

func TestResolveAccel(t *testing.T) {
	yes := func() (bool, error) { return true, nil }
	no := func() (bool, error) { return false, nil }
	broken := func() (bool, error) { return false, errors.New("no answer") }
	for _, tc := range []struct {
		env     string
		a       Accel
		host    func() (bool, error)
		want    Accel
		wantErr string
	}{
		{"", AccelAuto, yes, AccelKVM, ""},
		{"", AccelAuto, no, AccelTCG, ""},
		{"", AccelTCG, broken, AccelTCG, ""},
		{"", AccelKVM, no, "", "cannot run KVM"},
		{"", AccelAuto, broken, "", "no answer"},
		{"tcg", AccelAuto, yes, AccelTCG, ""},
		{"kvm", AccelAuto, yes, AccelKVM, ""},
		{"tcg", AccelKVM, yes, AccelKVM, ""}, // the spec's explicit choice wins
		{"xen", AccelAuto, yes, "", "YANK_ACCEL"},
	} {
		t.Setenv("YANK_ACCEL", tc.env)
		got, err := ResolveAccel(tc.a, tc.host)
		if got != tc.want || (err == nil) != (tc.wantErr == "") || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("YANK_ACCEL=%q %q: got %q, %v; want %q, %q", tc.env, tc.a, got, err, tc.want, tc.wantErr)
		}
	}
}
