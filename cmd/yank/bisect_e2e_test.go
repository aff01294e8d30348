package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
)

// TestBisectFindsThePlantedHang builds a throwaway git history from
// linux-source-6.1 (with the RFC and its virtio consumer applied, so the
// first commit survives the race), plants the hang by reverting the
// virtio-blk part of the consumer, breaks and repairs the build on the way,
// and checks that `git bisect run yank bisect-run` lands on the planting
// commit, skipping the one that does not build.
func TestBisectFindsThePlantedHang(t *testing.T) {
	e2e.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	yank := buildYank(t)
	fixed, err := kernels.Resolve(ctx, "rfc-v3-virtio", testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	repo, good, planted, broken := bisectFixture(t, fixed)
	git := func(args ...string) string { return run(t, repo, "git", args...) }

	logDir := filepath.Join(t.TempDir(), "bisect-logs")
	// The scenario's own cut: at its anchor (del_gendisk), so no step
	// is skipped for a cut that missed the window.
	bisectArgs := []string{"bisect-run", "-scenario", "unbind-race", "-trials", "2", "-log-dir", logDir}

	// A commit that does not build is skipped, never called bad.
	git("checkout", "-q", broken)
	code := runExit(t, repo, yank, bisectArgs...)
	if code != 125 {
		t.Fatalf("bisect-run on a commit that does not build exited %d, want 125 (skip)", code)
	}
	git("checkout", "-q", "master")

	git("bisect", "start", "HEAD", good)
	out := run(t, repo, "git", append([]string{"bisect", "run", yank}, bisectArgs...)...)
	t.Log(out)
	if !strings.Contains(out, planted+" is the first bad commit") {
		t.Fatalf("git bisect did not land on the planting commit %s", planted)
	}
	git("bisect", "reset")

	steps, err := loadSteps(logDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		if s.CutAt != "del_gendisk" || s.Offset != 0 {
			t.Errorf("step %s: cut at %q +%s, want unbind-race's anchor del_gendisk +0s", short(s.Commit), s.CutAt, s.Offset)
		}
		// The one skip allowed is the commit that does not build.
		if s.Result == "skip" && !strings.HasPrefix(s.Reason, "kernel does not build") {
			t.Errorf("step %s skipped: %s (an anchored cut must decide every commit that builds)", short(s.Commit), s.Reason)
		}
	}
	report := run(t, repo, yank, "bisect-report", "-log-dir", logDir)
	t.Log(report)
	if !strings.Contains(report, "skip") || !strings.Contains(report, "bad") || !strings.Contains(report, "good") {
		t.Fatalf("bisect-report lacks good, bad and skip steps:\n%s", report)
	}
}

// bisectFixture is the throwaway history, kept in the cache between runs
// (fixtures/bisect-linux-<base key>) with fixed author and commit dates, so
// its commits have the same hashes every time: their kernels are cache
// entries like any other (keyed by commit) and the tree's object dir
// stays, so a run after the first builds only the commit that does not
// build, incrementally. The first run on a machine builds them all.
func bisectFixture(t *testing.T, fixed kernels.Artifact) (repo, good, planted, broken string) {
	t.Helper()
	root, err := kernels.CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	repo = filepath.Join(root, "fixtures", "bisect-linux-"+fixed.Key)
	for _, kv := range []string{"GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"} {
		t.Setenv(kv, "2026-12-01T00:00:00Z")
	}
	git := func(args ...string) string { return run(t, repo, "git", args...) }
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "-q", "--verify", "refs/tags/fixture-complete").Output(); err == nil && len(out) > 0 {
		exec.Command("git", "-C", repo, "bisect", "reset").Run() // a run killed mid-bisect
		git("checkout", "-q", "-f", "master")
		t.Logf("reusing the fixture repository %s", repo)
		return repo, git("rev-parse", "fixture-good"), git("rev-parse", "fixture-planted"), git("rev-parse", "fixture-broken")
	}
	os.RemoveAll(repo) // an incomplete one
	if err := os.MkdirAll(filepath.Dir(repo), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Logf("making the fixture repository in %s", repo)

	// Hard-link the cached source (fast) and drop its build dir; every file
	// the test changes is rewritten, never edited in place.
	run(t, "", "cp", "-al", filepath.Join(fixed.Dir, "src"), repo)
	run(t, "", "rm", "-rf", filepath.Join(repo, "yank-out"))
	git("init", "-q")
	git("config", "user.email", "yank@example.org")
	git("config", "user.name", "yank test")
	git("config", "gc.auto", "0") // no background repack competing with the builds
	// Debian's tree ignores everything at the top level; track it all.
	writeFile(t, filepath.Join(repo, ".gitignore"), "")
	git("add", "-A")
	git("commit", "-qm", "good: 6.1 with the RFC and the virtio consumer")
	good = git("rev-parse", "HEAD")

	writeFile(t, filepath.Join(repo, "Documentation", "yank-note.txt"), "a harmless change\n")
	git("add", "-A")
	git("commit", "-qm", "docs: a harmless change")

	blk := filepath.Join(repo, "drivers/block/virtio_blk.c")
	patch := "../../kernels/patches/rfc-v3-virtio/0003-virtio_blk-fail-outstanding-requests-when-the-device.patch"
	abs, _ := filepath.Abs(patch)
	unshare(t, blk)
	git("apply", "-R", abs)
	git("commit", "-qam", "virtio_blk: drop the disconnect callback (plants the hang)")
	planted = git("rev-parse", "HEAD")

	src, err := os.ReadFile(blk)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, blk, string(src)+"\nthis does not compile;\n")
	git("commit", "-qam", "virtio_blk: break the build")
	broken = git("rev-parse", "HEAD")
	writeFile(t, blk, string(src))
	git("commit", "-qam", "virtio_blk: repair the build")
	writeFile(t, filepath.Join(repo, "Documentation", "yank-note.txt"), "another harmless change\n")
	git("commit", "-qam", "docs: another harmless change")

	git("tag", "fixture-good", good)
	git("tag", "fixture-planted", planted)
	git("tag", "fixture-broken", broken)
	git("tag", "fixture-complete")
	return repo, good, planted, broken
}

func buildYank(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "yank")
	run(t, "", "go", "build", "-o", bin, ".")
	return bin
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 3000))
	}
	return strings.TrimSpace(string(out))
}

func runExit(t *testing.T, dir, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s:\n%s", name, strings.Join(args, " "), tail(string(out), 2000))
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// writeFile replaces path with a new file, so a hard-linked original (the
// kernel cache) is never modified.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	os.Remove(path)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func unshare(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
