package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/yank-dev/yank/internal/e2e"
	"github.com/yank-dev/yank/kernels"
)

// TestBisectFindsThePlantedHang builds a throwaway git history from
// linux-source-6.1 (with the RFC and its virtio consumer applied, so the
// first commit survives the race), plants the hang by reverting the
// consumer (virtio_pci's report and virtio_blk's request failing), breaks
// and repairs the build on the way,
// and checks that `git bisect run yank bisect-run` lands on the planting
// commit, skipping the one that does not build.
func TestBisectFindsThePlantedHang(t *testing.T) {
	e2e.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	yank := buildYank(t)
	repo, good, planted, broken := bisectFixture(ctx, t)
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
	bisect := exec.Command("git", append([]string{"bisect", "run", yank}, bisectArgs...)...)
	bisect.Dir = repo
	outb, bisectErr := bisect.CombinedOutput()
	out := string(outb)
	t.Log(out)
	git("bisect", "reset")

	// The steps first: a wrong landing is explained by the step that went
	// wrong (its build log is in step.log).
	steps, err := loadSteps(logDir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if bisectErr != nil || !strings.Contains(out, planted+" is the first bad commit") {
			t.Fatalf("git bisect run (%v) did not land on the planting commit %s", bisectErr, planted)
		}
	}()
	for _, s := range steps {
		if s.CutAt != "del_gendisk" || s.Offset != 0 {
			t.Errorf("step %s: cut at %q +%s, want unbind-race's anchor del_gendisk +0s", short(s.Commit), s.CutAt, s.Offset)
		}
		// The one skip allowed is the commit that does not build.
		if s.Result == "skip" && !strings.HasPrefix(s.Reason, "kernel does not build") {
			t.Errorf("step %s skipped: %s (an anchored cut must decide every commit that builds)", short(s.Commit), s.Reason)
		}
		if s.Result == "skip" && s.Commit != broken {
			stepLog, _ := os.ReadFile(filepath.Join(s.Dir, "step.log"))
			t.Errorf("step %s (%s) skipped, but only %s does not build:\n%s", short(s.Commit), s.Subject, short(broken), tail(string(stepLog), 4000))
		}
	}
	report := run(t, repo, yank, "bisect-report", "-log-dir", logDir)
	t.Log(report)
	if !strings.Contains(report, "skip") || !strings.Contains(report, "bad") || !strings.Contains(report, "good") {
		t.Fatalf("bisect-report lacks good, bad and skip steps:\n%s", report)
	}
}

// TestTreeBuildAfterAnInterruptedOne: a build of a kernel tree stopped
// mid-make (Ctrl-C, a test's deadline: yank kills make's group) must not
// break the tree's next build. A kill can cut an object short with a fresh
// mtime, which make takes as up to date; one is cut short by hand here
// (the kill itself may land between writes), so without the cleanup the
// next build fails to link, every time.
func TestTreeBuildAfterAnInterruptedOne(t *testing.T) {
	e2e.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	yank := buildYank(t)
	repo, _, _, _ := bisectFixture(ctx, t)
	root, err := kernels.CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The tree's objects must be there to be cut short: on a cold cache
	// (this test run alone) one full build makes them, cached after.
	cut := filepath.Join(kernels.TreeBuildDir(root, repo), "obj", "kernel", "panic.o")
	if _, err := os.Stat(cut); err != nil {
		t.Logf("no objects yet in the tree's object dir: building %s first", repo)
		run(t, repo, yank, "kernel", "build", "-q", "-tree", repo)
	}
	// An untracked file gives the tree a key no run has built, so the
	// build happens every time (and reuses the tree's objects).
	note := filepath.Join(repo, "Documentation", fmt.Sprintf("yank-interrupted-%d.txt", time.Now().UnixNano()))
	writeFile(t, note, "an untracked file\n")
	defer os.Remove(note)

	build := exec.CommandContext(ctx, yank, "kernel", "build", "-tree", repo)
	build.Dir = repo
	stderr, err := build.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		t.Log(sc.Text())
		if strings.Contains(sc.Text(), ": build [") {
			break
		}
	}
	time.Sleep(2 * time.Second) // make is running: a no-op kernel make takes far longer
	if err := build.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stderr)
	if err := build.Wait(); err == nil {
		t.Fatal("yank kernel build ended well after the interrupt; the test needs it stopped mid-make")
	}

	if err := os.Truncate(cut, 0); err != nil {
		t.Fatalf("cutting an object short: %v (kernel/panic.o is built into every kernel yank makes)", err)
	}
	out := run(t, repo, yank, "kernel", "build", "-tree", repo)
	t.Log(out)
	if !strings.Contains(out, "was interrupted") {
		t.Errorf("the build after the interrupted one did not say it cleaned up after it")
	}
	entry := run(t, repo, yank, "kernel", "path", "-tree", repo)
	os.RemoveAll(filepath.Dir(entry)) // keyed by the untracked file: no run asks for it again
}

// bisectFixture is the throwaway history, kept in the cache between runs
// (fixtures/bisect-linux-<base key>) with fixed author and commit dates, so
// its commits have the same hashes every time: their kernels are cache
// entries like any other (keyed by commit) and the tree's object dir
// stays, so a run after the first builds only the commit that does not
// build, incrementally. The first run on a machine builds them all.
func bisectFixture(ctx context.Context, t *testing.T) (repo, good, planted, broken string) {
	t.Helper()
	fixed, err := kernels.Resolve(ctx, "rfc-v3-virtio", testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	root, err := kernels.CacheRoot()
	if err != nil {
		t.Fatal(err)
	}
	// v2: a new history (new dates, so new commit hashes and a new object
	// dir) after v1's copies were left broken by interrupted builds.
	repo = filepath.Join(root, "fixtures", "bisect-linux-v2-"+fixed.Key)
	if err := os.MkdirAll(filepath.Dir(repo), 0o700); err != nil {
		t.Fatal(err)
	}
	// One test process at a time checks out and builds in it; a second go
	// test (or a hand-run bisect) waits instead of moving HEAD under a
	// build.
	lockf, err := os.OpenFile(repo+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lockf.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lockf.Close() })
	for _, kv := range []string{"GIT_AUTHOR_DATE", "GIT_COMMITTER_DATE"} {
		t.Setenv(kv, "2026-12-07T00:00:00Z")
	}
	git := func(args ...string) string { return run(t, repo, "git", args...) }
	if out, err := exec.Command("git", "-C", repo, "rev-parse", "-q", "--verify", "refs/tags/fixture-complete").Output(); err == nil && len(out) > 0 {
		exec.Command("git", "-C", repo, "bisect", "reset").Run() // a run killed mid-bisect
		git("checkout", "-q", "-f", "master")
		git("clean", "-q", "-f", "-d", "-x") // and what it left untracked
		t.Logf("reusing the fixture repository %s", repo)
		return repo, git("rev-parse", "fixture-good"), git("rev-parse", "fixture-planted"), git("rev-parse", "fixture-broken")
	}
	os.RemoveAll(repo) // an incomplete one
	// and its objects: the new copy's files keep the cache's old mtimes,
	// so objects built from an earlier copy would look up to date.
	os.RemoveAll(kernels.TreeBuildDir(root, repo))
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

	// The planting reverts virtio_blk's request failing and virtio_pci's
	// report together. The request failing alone is not enough: with the
	// report left, the virtio core breaks the device, so I/O issued after
	// the cut fails instead of waiting, and the unbind HANGed in only 1 of
	// 4 trials (2026-12-07). Without both the kernel acts as rfc-v3.
	blk := filepath.Join(repo, "drivers/block/virtio_blk.c")
	unshare(t, blk)
	unshare(t, filepath.Join(repo, "drivers/virtio/virtio_pci_common.c"))
	for _, patch := range []string{
		"0003-virtio_blk-fail-outstanding-requests-when-the-device.patch",
		"0002-virtio_pci-report-surprise-removal-to-the-virtio-cor.patch",
	} {
		abs, _ := filepath.Abs(filepath.Join("../../kernels/patches/rfc-v3-virtio", patch))
		git("apply", "-R", abs)
	}
	git("commit", "-qam", "virtio: drop the surprise-removal report and virtio_blk's request failing (plants the hang)")
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
