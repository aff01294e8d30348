package kernels

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
)

// fakeKernel copies testdata/fakekernel (a Makefile with the kernel's
// targets) so the build pipeline can be tested in seconds.
func fakeKernel(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "linux")
	if err := os.CopyFS(dir, os.DirFS("testdata/fakekernel")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildBrokenFake builds a fake kernel that breaks as marker (a file the
// fake Makefile looks for) says, in a fresh cache, and returns the cache.
func buildBrokenFake(t *testing.T, marker string) (cache string, err error) {
	t.Helper()
	tree, cache := fakeKernel(t), t.TempDir()
	os.WriteFile(filepath.Join(tree, marker), nil, 0o644)
	_, err = Build(context.Background(), BuildOptions{Tree: tree, CacheDir: cache})
	return cache, err
}

func noTemps(t *testing.T, cache string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(cache, "kernels"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temp dir left behind: %s", e.Name())
		}
	}
}

func TestBuildFakeTree(t *testing.T) {
	e2e.Require(t)
	tree, cache := fakeKernel(t), t.TempDir()
	ctx := context.Background()
	var progress bytes.Buffer
	opts := BuildOptions{Tree: tree, CacheDir: cache, Progress: &progress}

	if _, ok, err := Lookup(ctx, opts); err != nil || ok {
		t.Fatalf("Lookup before build = %v, %v", ok, err)
	}
	// A temp dir from a killed build must be cleaned up.
	p, err := planBuild(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(cache, "kernels", tmpPrefix+p.key+"-dead")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}

	a, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if a.Cached || a.DisconnectHook || a.Release != "6.1.0-fake" || !strings.HasPrefix(a.Variant, "tree:"+tree+"@content-") {
		t.Errorf("artifact %+v", a)
	}
	for _, f := range []string{a.BzImage, a.Vmlinux, a.Config, a.BuildLog, filepath.Join(a.Dir, "meta.json")} {
		if !exists(f) {
			t.Errorf("%s missing", f)
		}
	}
	if exists(stale) {
		t.Error("stale temp dir not removed")
	}
	noTemps(t, cache)
	if st, _ := os.Stat(filepath.Join(cache, "kernels")); st.Mode().Perm() != 0o700 {
		t.Errorf("kernels dir mode %v", st.Mode().Perm())
	}
	for _, stage := range []string{"unpack", "config", "build", "install"} {
		if !strings.Contains(progress.String(), ": "+stage+" [") {
			t.Errorf("no progress for stage %s:\n%s", stage, progress.String())
		}
	}
	if exists(filepath.Join(tree, ".config")) {
		t.Error("tree was written to (want O= build)")
	}
	m, err := readMeta(a.Dir)
	if err != nil || m.MakeLines != 2 || m.Timings["build"] == "" || m.Source == "" || m.Compiler == "" {
		t.Errorf("meta %+v %v", m, err)
	}

	// The tree's object dir is kept for the next (incremental) build.
	if objs, _ := filepath.Glob(filepath.Join(cache, "trees", "*", "obj", "vmlinux")); len(objs) != 1 {
		t.Errorf("tree object dir not kept: %v", objs)
	}

	b, err := Build(ctx, opts)
	if err != nil || !b.Cached || b.Key != a.Key {
		t.Errorf("second build: cached=%v key=%s err=%v", b.Cached, b.Key, err)
	}

	// Changing the tree changes the key; the hook is then found.
	if err := os.WriteFile(filepath.Join(tree, "HOOK"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.Key == a.Key || !c.DisconnectHook {
		t.Errorf("hooked build: key %s (was %s), hook %v", c.Key, a.Key, c.DisconnectHook)
	}
}

func TestBuildFailurePointsAtLog(t *testing.T) {
	e2e.Require(t)
	cache, err := buildBrokenFake(t, "BREAK")
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("want BuildError, got %v", err)
	}
	t.Logf("error as users see it:\n%v", err)
	if be.Stage != "build" || !strings.Contains(be.Excerpt, "fake.c:1:1: error: broken on purpose") || !exists(be.LogPath) {
		t.Errorf("%+v", be)
	}
	if !strings.Contains(err.Error(), be.LogPath) {
		t.Errorf("message lacks log path: %v", err)
	}
	noTemps(t, cache)
	ents, _ := os.ReadDir(filepath.Join(cache, "kernels"))
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("entry %s created by a failed build", e.Name())
		}
	}
}

func TestBuildMissingConfigOption(t *testing.T) {
	e2e.Require(t)
	_, err := buildBrokenFake(t, "DROP")
	var me *MissingOptionsError
	if !errors.As(err, &me) || len(me.Missing) != 1 || me.Missing[0].Name != "CONFIG_PCI" {
		t.Fatalf("want CONFIG_PCI reported missing, got %v", err)
	}
}

// Cancelling a build kills make's whole process group and leaves no entry.
func TestBuildCancelKillsMake(t *testing.T) {
	e2e.Require(t)
	tree, cache := fakeKernel(t), t.TempDir()
	os.WriteFile(filepath.Join(tree, "SLOW"), nil, 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Build(ctx, BuildOptions{Tree: tree, CacheDir: cache})
		done <- err
	}()
	var pidFile string
	for deadline := time.Now().Add(20 * time.Second); pidFile == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		m, _ := filepath.Glob(filepath.Join(cache, "trees", "*", "obj", "sleeper.pid"))
		if len(m) == 1 {
			if b, _ := os.ReadFile(m[0]); len(bytes.TrimSpace(b)) > 0 {
				pidFile = m[0]
				break
			}
		}
	}
	if pidFile == "" {
		cancel()
		t.Fatal("make never started")
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("want context.Canceled, got %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Build did not return after cancel")
	}
	// The killed process may linger briefly as a zombie until reaped.
	alive := func() bool {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return false
		}
		_, after, _ := strings.Cut(string(b), ") ")
		return !strings.HasPrefix(after, "Z")
	}
	for deadline := time.Now().Add(5 * time.Second); pid > 0 && alive() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if pid > 0 && alive() {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("make's child %d survived the cancel", pid)
	}
	noTemps(t, cache)
}

func TestTreeIdentityGit(t *testing.T) {
	dir := fakeKernel(t)
	ctx := context.Background()
	git := func(args ...string) {
		t.Helper()
		env := append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		if err := run(ctx, dir, env, os.Stderr, "git", args...); err != nil {
			t.Fatalf("git %v: %v", args, err)
		}
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-qm", "x")
	clean, rev, err := treeIdentity(ctx, dir)
	if err != nil || !strings.HasPrefix(clean, "git:") || strings.Contains(clean, "dirty") || len(rev) != 12 {
		t.Fatalf("clean identity %q %q %v", clean, rev, err)
	}
	os.WriteFile(filepath.Join(dir, "fake.c"), []byte("int main(void){return 1;}\n"), 0o644)
	d1, rev, _ := treeIdentity(ctx, dir)
	os.WriteFile(filepath.Join(dir, "fake.c"), []byte("int main(void){return 2;}\n"), 0o644)
	d2, _, _ := treeIdentity(ctx, dir)
	if !strings.Contains(d1, "+dirty:") || d1 == d2 || !strings.Contains(rev, "-dirty-") {
		t.Errorf("dirty identities %q %q", d1, d2)
	}
}

// Two builders of one key: the lock makes one build and the other wait and
// reuse the entry.
func TestBuildConcurrentSameKey(t *testing.T) {
	e2e.Require(t)
	tree, cache := fakeKernel(t), t.TempDir()
	type res struct {
		a   Artifact
		err error
	}
	ch := make(chan res, 2)
	for i := 0; i < 2; i++ {
		go func() {
			a, err := Build(context.Background(), BuildOptions{Tree: tree, CacheDir: cache})
			ch <- res{a, err}
		}()
	}
	r1, r2 := <-ch, <-ch
	if r1.err != nil || r2.err != nil {
		t.Fatal(r1.err, r2.err)
	}
	if r1.a.Key != r2.a.Key || r1.a.Cached == r2.a.Cached {
		t.Errorf("want one build and one cache hit: %+v / %+v", r1.a, r2.a)
	}
	noTemps(t, cache)
}
