// Command corpusgen captures real guest consoles for scenario's console
// scanner tests (scenario/testdata/console, read by corpus_test.go).
//
//	go run ./trial/internal/corpusgen [-kernel stock] [-out scenario/testdata/console] [-only lkdtm-bug,...] [-v]
//
// Each capture boots one guest (machine.HotplugGuest, 2 vCPUs as trials
// use; one guest at a time), mounts debugfs, sets
// kernel.hung_task_timeout_secs=2, kernel.watchdog_thresh=1 (a soft lockup
// reports after 2 s) and kernel.panic_on_oops=0, provokes one real crash
// through LKDTM (echo TYPE > /sys/kernel/debug/provoke-crash/DIRECT, in the
// background: it may never return) or one real removal, waits (bounded)
// until the kernel's report has finished on the console, and writes the
// console lines as the guest printed them, from shortly before the
// provocation to the end of the report.
//
// Each file starts with a header of "# key: value" comment lines, a blank
// line, then the console lines:
//
//	# captured: go run ./trial/internal/corpusgen (kernel stock, linux-source-6.1 6.1.192, QEMU TCG) on 2026-12-01
//	# lkdtm: BUG
//	# want-crash: kernel BUG at drivers/misc/lkdtm/bugs.c:78!
//	# want-warnings: 0
//	# want-hung:
//
// The want-* values are what scanConsole must find. They are worked out
// here from the real console with this file's own logic, per crash type
// (the first line in the kernel's own wording for that report, the count
// of WARN headers, the pids khungtaskd named, cross-checked against the
// pid of the shell that provoked it), never by calling scanConsole: the
// test would be circular. A capture whose console does not show what the
// crash type must print fails instead of writing a file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/guestagent"
	"github.com/yank-dev/yank/images"
	"github.com/yank-dev/yank/journal"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/qmp"
)

const direct = "/sys/kernel/debug/provoke-crash/DIRECT"

// capture is one corpus file: what to provoke and what the kernel must
// print for it.
type capture struct {
	file  string // name without .txt
	lkdtm string // LKDTM crash type; "" for a capture without LKDTM
	note  string // one header line on what the console shows
	// setup runs (as a shell script) after the common setup.
	setup string
	// act provokes; it returns the guest pid of the provoking task (0 if
	// none). Default: the LKDTM type through DIRECT.
	act func(ctx context.Context, m *machine.Machine) (int, error)
	// start is the first line of the kernel's report (printk stamp
	// stripped); end is its last line, searched from start on. end nil:
	// the report ends when the console has been quiet for quiet.
	start, end func(string) bool
	// endAfter: end is searched from the first line matching it (after
	// start) on.
	endAfter func(string) bool
	quiet    time.Duration
	// untilExit: the report ends with QEMU (a panic reboots the guest,
	// and the machine runs with -no-reboot).
	untilExit bool
	// tries: boots to try for an outcome that depends on a race
	// (default 1); within: how long the whole report may take (default
	// 60 s).
	tries  int
	within time.Duration
	// bootOnly: the capture is the whole boot console, up to the guest
	// agent answering and the setup done (nothing is provoked).
	bootOnly bool
	// bootFrom: the first boot line kept (nil: all of them).
	bootFrom func(string) bool

	// What the kernel must have printed (checked on the console):
	// crashPrefix: the crash line starts with it ("" = no crash line);
	// warnings: WARN reports; hungSelf: khungtaskd names the provoking
	// task, and only it; hungComm: khungtaskd names a task whose comm
	// contains this (and any others); must: lines (substrings) that must
	// appear. Without hungSelf or hungComm, khungtaskd must name nobody.
	crashPrefix string
	warnings    int
	hungSelf    bool
	hungComm    string
	must        []string
}

func has(sub string) func(string) bool {
	return func(s string) bool { return strings.Contains(s, sub) }
}
func prefix(p string) func(string) bool {
	return func(s string) bool { return strings.HasPrefix(s, p) }
}

// endOfTrace: an oops or WARN report ends with this (lib/bug.c,
// kernel/panic.c: print_oops_end_marker).
var endOfTrace = prefix("---[ end trace ")

// endOfTask: a stack dump of a task (show_stack/sched_show_task) ends with
// </TASK> (arch/x86/kernel/dumpstack.c).
var endOfTask = func(s string) bool { return strings.TrimSpace(s) == "</TASK>" }

var captures = []capture{
	{
		file: "lkdtm-bug", lkdtm: "BUG", note: "BUG() in process context: an oops that kills the writing shell",
		start: prefix("kernel BUG at "), end: endOfTrace,
		crashPrefix: "kernel BUG at drivers/misc/lkdtm/bugs.c:",
		must:        []string{"lkdtm: Performing direct entry BUG", "invalid opcode: 0000 [#1]"},
	},
	{
		file: "lkdtm-warning", lkdtm: "WARNING", note: "WARN_ON(): a warning, not a crash",
		start: prefix("WARNING: CPU: "), end: endOfTrace,
		warnings: 1,
		must:     []string{"lkdtm: Performing direct entry WARNING", "at drivers/misc/lkdtm/bugs.c:"},
	},
	{
		file: "lkdtm-exception", lkdtm: "EXCEPTION", note: "a write to address 0 (lkdtm_EXCEPTION): page fault oops",
		start: prefix("BUG: kernel NULL pointer dereference"), end: endOfTrace,
		crashPrefix: "BUG: kernel NULL pointer dereference, address: 0000000000000000",
		must:        []string{"lkdtm: Performing direct entry EXCEPTION", "#PF: supervisor write access in kernel mode", "Oops: 0002 [#1]"},
	},
	{
		file: "lkdtm-access_null", lkdtm: "ACCESS_NULL", note: "a read of address 0 (lkdtm_ACCESS_NULL): page fault oops",
		start: prefix("BUG: kernel NULL pointer dereference"), end: endOfTrace,
		crashPrefix: "BUG: kernel NULL pointer dereference, address: 0000000000000000",
		must:        []string{"lkdtm: Performing direct entry ACCESS_NULL", "#PF: supervisor read access in kernel mode", "Oops: 0000 [#1]"},
	},
	{
		file: "lkdtm-softlockup", lkdtm: "SOFTLOCKUP", note: "a CPU spinning with preemption off: the soft lockup watchdog (watchdog_thresh=1) reports it",
		start: has("BUG: soft lockup - CPU#"), end: endOfTask,
		crashPrefix: "watchdog: BUG: soft lockup - CPU#",
		must:        []string{"lkdtm: Performing direct entry SOFTLOCKUP", "RIP: 0010:lkdtm_SOFTLOCKUP+"},
	},
	{
		file: "lkdtm-hung_task", lkdtm: "HUNG_TASK", note: "a task sleeping uninterruptibly forever: khungtaskd (hung_task_timeout_secs=2) reports it, no crash",
		start: prefix("INFO: task "), end: endOfTask,
		hungSelf: true,
		must:     []string{"lkdtm: Performing direct entry HUNG_TASK", "disables this message.", "state:D", " direct_entry+"},
	},
	{
		file: "lkdtm-panic", lkdtm: "PANIC", note: "panic(\"dumptest\"): the guest reboots at once (panic=-1, -no-reboot: QEMU exits)",
		start: prefix("Kernel panic - not syncing"), untilExit: true,
		crashPrefix: "Kernel panic - not syncing: dumptest",
		must:        []string{"lkdtm: Performing direct entry PANIC"},
	},
	{
		file: "rcu-stall", lkdtm: "SOFTLOCKUP",
		note:  "the same spinning CPU with the soft lockup detector off (kernel.soft_watchdog=0) and rcupdate.rcu_cpu_stall_timeout=3: the RCU CPU stall detector reports it",
		setup: "echo 0 > /proc/sys/kernel/soft_watchdog\necho 3 > /sys/module/rcupdate/parameters/rcu_cpu_stall_timeout",
		start: prefix("rcu: INFO: rcu_sched "), end: endOfTask,
		crashPrefix: "rcu: INFO: rcu_sched ",
		must:        []string{"lkdtm: Performing direct entry SOFTLOCKUP", "lkdtm_SOFTLOCKUP+"},
	},
	{
		file: "boot-clean", bootOnly: true, bootFrom: prefix("rcu: "),
		note: "negative: a normal boot of the standard guest, from the first rcu: line (the memory map and ACPI tables before it left out) to the agent answering and the corpus setup (debugfs, sysctls)",
		must: []string{"Run /init as init process", "YANK-READY"},
	},
	{
		file: "surprise-removal-io",
		note: "negative: surprise removal (slot power cut from the host) of the disk with 4 MiB of dirty pages cached and no writeback in flight (the disk's bdi min_ratio 50); pciehp breaks the virtqueues, del_gendisk's writeback fails with I/O errors, nothing crashes or hangs",
		act:  surpriseWithDirtyPagesParked, tries: 2,
		// The console goes quiet when pciehp is done (wait longer than
		// khungtaskd's 2 s, so a hang would show).
		start: has("pciehp: Slot(1): Card not present"), quiet: 5 * time.Second,
		must: []string{"I/O error, dev vda", "Buffer I/O error on dev vda"},
	},
	{
		file: "surprise-writeback-hang",
		note: "the no-unbind hang: surprise removal with dirty pages of the disk cached; writeback waits for tags of requests that never complete and pciehp waits in del_gendisk; khungtaskd names both (first round only)",
		act:  surpriseWithDirtyPages, tries: 4, within: 15 * time.Second,
		// The first khungtaskd round ends with pciehp's stack.
		start: has("pciehp: Slot(1): Card not present"),
		end:   endOfTask, endAfter: has("-pciehp:"),
		hungComm: "pciehp",
		must:     []string{"del_gendisk+", "pciehp_ist+"},
	},
}

// surpriseWithDirtyPages leaves 4 MiB of dirty pages of the disk in the
// page cache (the disk held open, periodic writeback off, as scenario's
// buffered load does) and cuts the slot's power from the host, as
// scenario's surprise removals do. On stock it goes one of two ways: the
// flusher's writeback requests are in flight at the cut, never complete,
// and pciehp hangs in del_gendisk (the no-unbind bug), or pciehp breaks
// the virtqueues first and the writeback fails with I/O errors.
func surpriseWithDirtyPages(ctx context.Context, m *machine.Machine) (int, error) {
	return surpriseDirty(ctx, m, false)
}

// surpriseWithDirtyPagesParked is surpriseWithDirtyPages with the disk's
// bdi given half the dirty limits (min_ratio 50): its share of the
// background threshold then covers the 4 MiB, so the flusher starts no
// writeback before the cut and nothing is in flight when pciehp breaks the
// virtqueues; del_gendisk's writeback fails with I/O errors.
func surpriseWithDirtyPagesParked(ctx context.Context, m *machine.Machine) (int, error) {
	return surpriseDirty(ctx, m, true)
}

func surpriseDirty(ctx context.Context, m *machine.Machine, parked bool) (int, error) {
	cut, err := qmp.PrepareSurprise(ctx, m.QMP, "disk0")
	if err != nil {
		return 0, err
	}
	if _, err := m.Agent.Exec(ctx, guestagent.Background("exec sleep 2147483647 < /dev/vda", "/dev/null")); err != nil {
		return 0, err
	}
	script := `set -e
echo 90 > /proc/sys/vm/dirty_ratio
echo 80 > /proc/sys/vm/dirty_background_ratio
echo 0 > /proc/sys/vm/dirty_writeback_centisecs
`
	if parked {
		script += "echo 50 > /sys/block/vda/bdi/min_ratio\n"
	}
	script += `sleep 0.2
dd if=/dev/zero of=/dev/vda bs=1M count=4 2>&1
sleep 0.5`
	res, err := m.Agent.RunShell(ctx, script)
	if err == nil {
		err = res.Err("dirtying the page cache")
	}
	if err != nil {
		return 0, err
	}
	if _, err := cut.Fire(ctx); err != nil {
		return 0, fmt.Errorf("surprise removal: %w", err)
	}
	return 0, nil
}

func main() {
	kernel := flag.String("kernel", "stock", "kernel variant (or bzImage path)")
	out := flag.String("out", "scenario/testdata/console", "corpus dir")
	only := flag.String("only", "", "comma list of captures (default: all)")
	verbose := flag.Bool("v", false, "echo the guest console and host events to stderr")
	flag.Parse()
	var sel []capture
	for _, c := range captures {
		if *only == "" || slices.Contains(strings.Split(*only, ","), c.file) {
			sel = append(sel, c)
		}
	}
	if len(sel) == 0 {
		fatalf("-only %q: no such capture", *only)
	}
	ctx := context.Background()
	k, err := kernels.Resolve(ctx, *kernel, os.Stderr)
	if err != nil {
		fatalf("kernel %s: %v", *kernel, err)
	}
	img, err := images.ForKernel(ctx, k.ModulesDir)
	if err != nil {
		fatalf("image: %v", err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatalf("%v", err)
	}
	g := gen{kernelName: *kernel, k: k, initrd: img.Path, out: *out, verbose: *verbose}
	failed := 0
	for _, c := range sel {
		path, err := g.run(ctx, c)
		for try := 2; err != nil && try <= c.tries; try++ {
			fmt.Fprintf(os.Stderr, "corpusgen: %s: try %d failed, booting again: %s\n", c.file, try-1, firstLine(err))
			path, err = g.run(ctx, c)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "corpusgen: %s: %v\n", c.file, err)
			failed++
			continue
		}
		fmt.Printf("wrote %s\n", path)
	}
	if failed > 0 {
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "corpusgen: "+format+"\n", args...)
	os.Exit(1)
}

type gen struct {
	kernelName string
	k          kernels.Artifact
	initrd     string
	out        string
	verbose    bool
}

// bootContext: boot lines kept before the capture (all of them when the
// boot is no longer than this, else its last bootTail lines).
const (
	bootContext = 40
	bootTail    = 4
)

func (g gen) run(ctx context.Context, c capture) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	spec := machine.HotplugGuest("corpusgen-"+c.file, g.k.BzImage, g.initrd)
	spec.CPUs = 2 // as trials (scenario.Params.CPUs)
	opts := machine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if g.verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
		opts.ConsoleEcho = os.Stderr
	}
	m, err := machine.Boot(ctx, spec, opts)
	if err != nil {
		return "", err
	}
	defer m.Close()

	setup := `set -e
[ -e ` + direct + ` ] || mount -t debugfs none /sys/kernel/debug
echo 2 > /proc/sys/kernel/hung_task_timeout_secs
echo 1 > /proc/sys/kernel/watchdog_thresh
echo 0 > /proc/sys/kernel/panic_on_oops
`
	if c.lkdtm != "" {
		// Reading DIRECT lists the crash types this LKDTM knows.
		setup += "grep -qx " + c.lkdtm + " " + direct + "\n"
	}
	setup += c.setup
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	res, err := m.Agent.RunShell(sctx, setup)
	scancel()
	if err == nil {
		err = res.Err("setup")
	}
	if err != nil {
		return "", fmt.Errorf("guest setup: %w", err)
	}
	bootLines := m.Console.Mark()
	// Let anything the setup printed arrive before the provocation.
	time.Sleep(300 * time.Millisecond)

	if c.bootOnly {
		boot := m.Console.Lines(0)[:bootLines]
		if c.bootFrom != nil {
			i := slices.IndexFunc(boot, func(e journal.Entry[string]) bool { return c.bootFrom(stripStamp(e.Item)) })
			if i < 0 {
				return "", errors.New("the boot has no line to start from")
			}
			boot = boot[i:]
		}
		return g.write(c, m, boot, 0)
	}
	act := c.act
	if act == nil {
		act = func(ctx context.Context, m *machine.Machine) (int, error) {
			// echo is busybox sh's builtin: the shell itself enters
			// LKDTM, so its pid is the task the report names.
			return m.Agent.Exec(ctx, guestagent.Background("echo "+c.lkdtm+" > "+direct, "/dev/null"))
		}
	}
	pid, err := act(ctx, m)
	if err != nil {
		return "", fmt.Errorf("provoking: %w", err)
	}

	// The report's first line, then its end.
	within := c.within
	if within == 0 {
		within = 60 * time.Second
	}
	wctx, wcancel := context.WithTimeout(ctx, within)
	defer wcancel()
	first, err := m.Console.WaitFunc(wctx, bootLines, func(s string) bool { return c.start(stripStamp(s)) })
	if err != nil {
		return "", fmt.Errorf("the report never started on the console: %w\n%s", err, m.Console.Tail(30))
	}
	startIdx := first.Seq
	var lines []journal.Entry[string]
	switch {
	case c.untilExit:
		// Wait for QEMU to exit and the console to drain (its journal
		// closes at EOF).
		select {
		case <-m.Done():
		case <-wctx.Done():
			return "", fmt.Errorf("QEMU did not exit after the panic\n%s", m.Console.Tail(30))
		}
		if _, err := m.Console.WaitFunc(wctx, 0, func(string) bool { return false }); wctx.Err() != nil {
			return "", fmt.Errorf("the console did not close after QEMU exited: %v", err)
		}
		lines = m.Console.Lines(0)
	case c.end != nil:
		if c.endAfter != nil {
			e, err := m.Console.WaitFunc(wctx, startIdx, func(s string) bool { return c.endAfter(stripStamp(s)) })
			if err != nil {
				return "", fmt.Errorf("the report never reached its last part: %w\n%s", err, m.Console.Tail(30))
			}
			startIdx = e.Seq
		}
		last, err := m.Console.WaitFunc(wctx, startIdx, func(s string) bool { return c.end(stripStamp(s)) })
		if err != nil {
			return "", fmt.Errorf("the report never ended on the console: %w\n%s", err, m.Console.Tail(30))
		}
		lines = m.Console.Lines(0)[:last.Seq+1]
	default:
		if err := waitQuiet(wctx, m.Console, c.quiet); err != nil {
			return "", err
		}
		lines = m.Console.Lines(0)
	}

	from := 0
	if bootLines > bootContext {
		from = bootLines - bootTail
	}
	return g.write(c, m, lines[from:], pid)
}

// write checks the captured lines against what the crash type must print
// and writes the corpus file.
func (g gen) write(c capture, m *machine.Machine, lines []journal.Entry[string], pid int) (string, error) {
	var text []string
	for _, e := range lines {
		text = append(text, e.Item)
	}
	want, err := c.expect(text, pid)
	if err != nil {
		return "", fmt.Errorf("%w\nconsole:\n%s", err, strings.Join(text, "\n"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# captured: go run ./trial/internal/corpusgen (kernel %s, %s, QEMU %s) on %s\n",
		g.kernelName, kernelDesc(g.k), strings.ToUpper(string(m.Accel)), time.Now().UTC().Format("2006-01-02"))
	if c.lkdtm != "" {
		fmt.Fprintf(&b, "# lkdtm: %s\n", c.lkdtm)
	}
	fmt.Fprintf(&b, "# note: %s\n", c.note)
	header(&b, "want-crash", want.crash)
	header(&b, "want-warnings", strconv.Itoa(want.warnings))
	header(&b, "want-hung", want.hung)
	b.WriteString("\n")
	for _, l := range text {
		b.WriteString(l + "\n")
	}
	path := filepath.Join(g.out, c.file+".txt")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// header writes one "# key: value" line ("# key:" for an empty value).
func header(b *strings.Builder, key, value string) {
	b.WriteString(strings.TrimSpace("# "+key+": "+value) + "\n")
}

func kernelDesc(k kernels.Artifact) string {
	if k.Variant == "debian" {
		return "Debian " + k.Release
	}
	if strings.Contains(k.Variant, "/") {
		return k.Release
	}
	return "linux-source-6.1 " + k.Release
}

type want struct {
	crash    string
	warnings int
	hung     string
}

// expect works out the header's want-* values from the captured lines and
// checks them against what the crash type must print.
func (c capture) expect(lines []string, pid int) (want, error) {
	var w want
	var hung []string
	for _, l := range c.must {
		if !slices.ContainsFunc(lines, has(l)) {
			return w, fmt.Errorf("no %q on the console", l)
		}
	}
	for _, raw := range lines {
		s := stripStamp(raw)
		if c.crashPrefix != "" && w.crash == "" && strings.HasPrefix(s, c.crashPrefix) {
			w.crash = s
		}
		// lib/bug.c __warn(): "WARNING: CPU: %d PID: %d at ...".
		if strings.HasPrefix(s, "WARNING: CPU: ") {
			w.warnings++
		}
		// kernel/hung_task.c: "INFO: task %s:%d blocked for more than %ld seconds."
		if rest, ok := strings.CutPrefix(s, "INFO: task "); ok {
			if i := strings.Index(rest, " blocked for more than "); i > 0 {
				comm := rest[:i]
				p := comm[strings.LastIndexByte(comm, ':')+1:]
				if _, err := strconv.Atoi(p); err == nil && !slices.Contains(hung, p) {
					hung = append(hung, p)
				}
			}
		}
	}
	if c.crashPrefix != "" && w.crash == "" {
		return w, fmt.Errorf("no line starting with %q", c.crashPrefix)
	}
	if w.warnings != c.warnings {
		return w, fmt.Errorf("%d WARN reports, want %d", w.warnings, c.warnings)
	}
	switch {
	case c.hungSelf:
		if len(hung) != 1 || hung[0] != strconv.Itoa(pid) {
			return w, fmt.Errorf("khungtaskd named %v, want only the provoking shell (pid %d)", hung, pid)
		}
	case c.hungComm != "":
		if !slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "INFO: task ") && strings.Contains(l, c.hungComm)
		}) {
			return w, fmt.Errorf("khungtaskd named %v, none of them %s", hung, c.hungComm)
		}
	case len(hung) > 0:
		return w, fmt.Errorf("khungtaskd named %v, want none", hung)
	}
	w.hung = strings.Join(hung, ",")
	// The oops/WARN/lockup reports name the provoking shell.
	if pid > 0 && c.lkdtm != "" && c.lkdtm != "HUNG_TASK" {
		if !slices.ContainsFunc(lines, has(fmt.Sprintf(" PID: %d Comm: sh ", pid))) {
			return w, fmt.Errorf("no report names the provoking shell (PID: %d Comm: sh)", pid)
		}
	}
	return w, nil
}

// waitQuiet waits until the console has had no new line for d.
func waitQuiet(ctx context.Context, c *machine.Console, d time.Duration) error {
	n := c.Mark()
	since := time.Now()
	for {
		select {
		case <-ctx.Done():
			return errors.New("the console never went quiet")
		case <-time.After(100 * time.Millisecond):
		}
		if m := c.Mark(); m != n {
			n, since = m, time.Now()
		} else if time.Since(since) >= d {
			return nil
		}
	}
}

// stripStamp removes a leading printk time stamp ("[    1.234567] ").
func stripStamp(s string) string {
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 && strings.Trim(s[1:i], " 0123456789.") == "" {
			return strings.TrimPrefix(s[i+1:], " ")
		}
	}
	return s
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
