package machine_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
)

// debianGuest returns the standard hotplug guest on Debian's packaged
// kernel (no kernel build needed), building the image once per process.
func debianGuest(tb testing.TB, name string) machine.Spec {
	tb.Helper()
	guestOnce.Do(func() {
		k, err := kernels.Debian()
		if err != nil {
			guestErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		img, err := images.ForKernel(ctx, k.ModulesDir)
		if err != nil {
			guestErr = err
			return
		}
		guestKernel, guestInitrd = k.BzImage, img.Path
	})
	if guestErr != nil {
		tb.Fatalf("preparing the Debian guest (run `make deps`): %v", guestErr)
	}
	return machine.HotplugGuest(name, guestKernel, guestInitrd)
}

var (
	guestOnce                sync.Once
	guestErr                 error
	guestKernel, guestInitrd string
)

// boot starts spec and closes it at test end, echoing the console to the
// test log when -v is given.
func boot(t *testing.T, ctx context.Context, spec machine.Spec) *machine.Machine {
	t.Helper()
	opts := machine.Options{}
	if testing.Verbose() {
		opts.ConsoleEcho = testWriter{t}
	}
	m, err := machine.Boot(ctx, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return m
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	os.Exit(m.Run())
}
