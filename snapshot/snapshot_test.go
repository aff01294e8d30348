package snapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func saveFake(content string) Maker {
	return func(_ context.Context, dir string) (Meta, error) {
		if err := os.WriteFile(filepath.Join(dir, "state"), []byte(content), 0o600); err != nil {
			return Meta{}, err
		}
		return Meta{Kernel: "/k", Facts: map[string]string{"disk": "vda"}}, nil
	}
}

func TestGetMakesOnceForConcurrentCallers(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	slow := func(ctx context.Context, dir string) (Meta, error) {
		calls.Add(1)
		time.Sleep(200 * time.Millisecond)
		return saveFake("guest")(ctx, dir)
	}
	var wg sync.WaitGroup
	var madeN atomic.Int32
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, made, err := s.Get(context.Background(), "k1", slow)
			if err != nil || e.Meta.Facts["disk"] != "vda" || e.Meta.Bytes != 5 {
				t.Errorf("Get: %+v, %v", e.Meta, err)
			}
			if made {
				madeN.Add(1)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 || madeN.Load() != 1 {
		t.Fatalf("maker ran %d times, %d callers say they made it; want 1 and 1", calls.Load(), madeN.Load())
	}
}

func TestGetRemakesDamagedAndRemoved(t *testing.T) {
	s, _ := Open(t.TempDir())
	e, _, err := s.Get(context.Background(), "k", saveFake("abc"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.State(), []byte("a"), 0o600) // size no longer matches meta
	if _, made, err := s.Get(context.Background(), "k", saveFake("abcd")); err != nil || !made {
		t.Fatalf("damaged entry: made %v, %v; want it made again", made, err)
	}
	if err := s.Remove("k"); err != nil {
		t.Fatal(err)
	}
	if _, made, _ := s.Get(context.Background(), "k", saveFake("x")); !made {
		t.Fatal("removed entry was not made again")
	}
}

func TestGetKeepsRefusalsAndMakerErrors(t *testing.T) {
	s, _ := Open(t.TempDir())
	refuse := func(context.Context, string) (Meta, error) { return Meta{Refused: "nvme blocks migration"}, nil }
	if e, _, err := s.Get(context.Background(), "r", refuse); err != nil || e.Meta.Refused == "" {
		t.Fatalf("refusal: %+v, %v", e.Meta, err)
	}
	e, made, err := s.Get(context.Background(), "r", saveFake("never"))
	if err != nil || made || e.Meta.Refused == "" {
		t.Fatalf("a refusal is not remembered: made %v, %+v, %v", made, e.Meta, err)
	}
	boom := errors.New("boot failed")
	if _, _, err := s.Get(context.Background(), "b", func(context.Context, string) (Meta, error) { return Meta{}, boom }); !errors.Is(err, boom) {
		t.Fatalf("maker error: %v", err)
	}
	if _, made, _ := s.Get(context.Background(), "b", saveFake("y")); !made {
		t.Fatal("a failed make left an entry")
	}
	if _, _, err := s.Get(context.Background(), "n", func(context.Context, string) (Meta, error) { return Meta{}, nil }); err == nil {
		t.Fatal("a maker that saved nothing and refused nothing gave an entry")
	}
}

func TestGCDropsEntriesWithoutTheirKernelAndOldOnes(t *testing.T) {
	s, _ := Open(t.TempDir())
	kernel := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(kernel, []byte("k"), 0o600)
	mk := func(k string) Maker {
		return func(ctx context.Context, dir string) (Meta, error) {
			m, err := saveFake("s")(ctx, dir)
			m.Kernel, m.Initrd = k, k
			return m, err
		}
	}
	s.Get(context.Background(), "live", mk(kernel))
	s.Get(context.Background(), "orphan", mk("/nonexistent/bzImage"))
	old, _, _ := s.Get(context.Background(), "old", mk(kernel))
	past := time.Now().Add(-30 * 24 * time.Hour)
	os.Chtimes(filepath.Join(old.Dir, usedFile), past, past)
	os.Mkdir(filepath.Join(s.Dir, "dead.tmp-123"), 0o700)

	removed, kept := s.GC(14*24*time.Hour, true)
	if len(removed) != 3 || len(kept) != 1 {
		t.Fatalf("dry run: removed %+v, kept %+v; want orphan, old, the leftover gone and live kept", removed, kept)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "orphan")); err != nil {
		t.Fatal("dry run removed something")
	}
	s.GC(14*24*time.Hour, false)
	for name, want := range map[string]bool{"live": true, "orphan": false, "old": false, "dead.tmp-123": false} {
		if _, err := os.Stat(filepath.Join(s.Dir, name)); (err == nil) != want {
			t.Errorf("%s: exists=%v after GC, want %v", name, err == nil, want)
		}
	}
}

func TestKeyDependsOnEveryPart(t *testing.T) {
	a, _ := Key("qemu", []string{"-m", "512"}, map[string]int{"write_mb": 48})
	b, _ := Key("qemu", []string{"-m", "512"}, map[string]int{"write_mb": 49})
	c, _ := Key("qemu", []string{"-m", "512"}, map[string]int{"write_mb": 48})
	if a == b || a != c || len(a) != 24 {
		t.Fatalf("keys %s %s %s", a, b, c)
	}
}
