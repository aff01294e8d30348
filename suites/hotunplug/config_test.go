package hotunplug_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/yank-dev/yank/anchor"
	"github.com/yank-dev/yank/kernels"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
	"github.com/yank-dev/yank/scenario"
	"github.com/yank-dev/yank/snapshot"
	"github.com/yank-dev/yank/suites/expect"
	_ "github.com/yank-dev/yank/suites/internal/flags" // defines the -yank.* flags read here
	"github.com/yank-dev/yank/suites/plan"
)

// setting returns a flag's value, or the environment's when the flag was
// not given on the command line.
func setting(name, env string) string {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	if v := os.Getenv(env); !given && v != "" {
		return v
	}
	return flag.Lookup(name).Value.String()
}

// libvirtPool parses -yank.libvirt ("" = no pool: local QEMU).
func libvirtPool(list string) (*machine.Pool, error) {
	var members []machine.PoolMember
	for _, uri := range strings.Split(list, ",") {
		if uri = strings.TrimSpace(uri); uri == "" {
			continue
		}
		b, err := libvirt.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("-yank.libvirt: %w", err)
		}
		members = append(members, machine.PoolMember{Backend: b})
	}
	if len(members) == 0 {
		return nil, nil
	}
	return machine.NewPool(members...)
}

// config is the suite's knobs, resolved.
type config struct {
	opts      plan.Options
	artifacts string // "" = temp dir
	matrix    bool
	timeout   time.Duration
	ioTimeout time.Duration // -yank.io-timeout (0: each device's default)
	// anchorBudget is -yank.anchor-budget (0: the default): an anchored
	// trial whose anchor is not hit this long after T0 is UNREACHED.
	anchorBudget time.Duration
	pool         *machine.Pool // nil = local QEMU processes
	// snapshots starts trials from snapshots in the cache; nil is
	// -yank.no-snapshot (cold boots).
	snapshots *snapshot.Store
	detection scenario.Detection // -yank.stall-window, -yank.settle, -yank.probe-interval, -yank.recovered-after
	shard     scenario.ShardSpec // -yank.shard (1/1: every trial)
}

// loadConfig reads the flags (and environment); seed is Ginkgo's, used
// when -yank.seed is not set, so all parallel processes agree on it.
func loadConfig(ginkgoSeed int64) (config, error) {
	var c config
	m := expect.Default
	if _, err := kernels.UseVariantsFile(setting("yank.variants", "YANK_VARIANTS")); err != nil {
		return c, fmt.Errorf("-yank.variants: %w", err)
	}
	list := setting("yank.kernels", "YANK_KERNELS")
	if one := setting("yank.kernel", "YANK_KERNEL"); one != "" {
		if list == "" {
			list = one
		} else {
			list += "," + one
		}
	}
	if list == "" {
		list = strings.Join(m.KernelNames(), ",")
	}
	ks, err := plan.ParseKernels(list)
	if err != nil {
		return c, err
	}
	var scs []scenario.Scenario
	names := setting("yank.scenarios", "YANK_SCENARIOS")
	if file := setting("yank.scenario-file", "YANK_SCENARIO_FILE"); file != "" {
		own, err := scenario.AddFile(file)
		if err != nil {
			return c, fmt.Errorf("-yank.scenario-file: %w", err)
		}
		if names == "" {
			scs = own
		}
	} else if names == "" {
		scs = scenario.Defaults()
	}
	for _, n := range strings.Split(names, ",") {
		if n = strings.TrimSpace(n); n != "" {
			sc, err := scenario.Lookup(n)
			if err != nil {
				return c, err
			}
			scs = append(scs, sc)
		}
	}
	var offsets []time.Duration
	for _, o := range strings.Split(setting("yank.offsets", "YANK_OFFSETS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			d, err := time.ParseDuration(o)
			if err != nil {
				return c, fmt.Errorf("-yank.offsets: %q: %w (write it like 1.5s)", o, err)
			}
			if d < 0 || d > scenario.MaxOffset {
				return c, fmt.Errorf("-yank.offsets: %s out of range 0s..%s", d, scenario.MaxOffset)
			}
			offsets = append(offsets, d)
		}
	}
	cutAt := strings.TrimSpace(setting("yank.cut-at", "YANK_CUT_AT"))
	if cutAt != "" && cutAt != scenario.CutTimed {
		if _, err := anchor.Parse(cutAt); err != nil {
			return c, fmt.Errorf("-yank.cut-at: %w, or %q for timed cuts", err, scenario.CutTimed)
		}
	}
	if c.anchorBudget, err = time.ParseDuration(setting("yank.anchor-budget", "YANK_ANCHOR_BUDGET")); err != nil {
		return c, fmt.Errorf("-yank.anchor-budget: %w", err)
	}
	if err := (scenario.Params{AnchorBudget: c.anchorBudget}).Validate(); err != nil {
		return c, fmt.Errorf("-yank.anchor-budget: %w", err)
	}
	repeats, err := strconv.Atoi(setting("yank.repeats", "YANK_REPEATS"))
	if err != nil {
		return c, fmt.Errorf("-yank.repeats: %w", err)
	}
	if repeats == 0 {
		repeats = 1
	}
	seed, err := strconv.ParseInt(setting("yank.seed", "YANK_SEED"), 10, 64)
	if err != nil {
		return c, fmt.Errorf("-yank.seed: %w", err)
	}
	if seed == 0 {
		seed = ginkgoSeed
	}
	jitter, err := time.ParseDuration(setting("yank.jitter", "YANK_JITTER"))
	if err != nil {
		return c, fmt.Errorf("-yank.jitter: %w", err)
	}
	fallback, err := expect.ParseClass(setting("yank.expect", "YANK_EXPECT"))
	if err != nil {
		return c, fmt.Errorf("-yank.expect: %w", err)
	}
	c.timeout, err = time.ParseDuration(setting("yank.spec-timeout", "YANK_SPEC_TIMEOUT"))
	if err != nil {
		return c, fmt.Errorf("-yank.spec-timeout: %w", err)
	}
	if a := setting("yank.artifacts", "YANK_ARTIFACTS"); a != "" {
		if c.artifacts, err = filepath.Abs(a); err != nil {
			return c, err
		}
	}
	for _, k := range []struct {
		flag, env string
		to        *time.Duration
	}{{"yank.stall-window", "YANK_STALL_WINDOW", &c.detection.StallWindow}, {"yank.settle", "YANK_SETTLE", &c.detection.Settle}, {"yank.probe-interval", "YANK_PROBE_INTERVAL", &c.detection.ProbeInterval}, {"yank.recovered-after", "YANK_RECOVERED_AFTER", &c.detection.RecoveredAfter}} {
		if *k.to, err = time.ParseDuration(setting(k.flag, k.env)); err != nil {
			return c, fmt.Errorf("-%s: %w", k.flag, err)
		}
	}
	if err := c.detection.Check(); err != nil {
		return c, fmt.Errorf("-yank.stall-window, -yank.settle, -yank.probe-interval, -yank.recovered-after: %w", err)
	}
	noSnap, err := strconv.ParseBool(setting("yank.no-snapshot", "YANK_NO_SNAPSHOT"))
	if err != nil {
		return c, fmt.Errorf("-yank.no-snapshot: %w (want true or false, or YANK_NO_SNAPSHOT=1)", err)
	}
	if !noSnap {
		if c.snapshots, err = snapshot.Open(""); err != nil {
			return c, fmt.Errorf("snapshots (-yank.no-snapshot turns them off): %w", err)
		}
	}
	if c.ioTimeout, err = time.ParseDuration(setting("yank.io-timeout", "YANK_IO_TIMEOUT")); err != nil {
		return c, fmt.Errorf("-yank.io-timeout: %w", err)
	}
	if err := scenario.CheckIOTimeout(scs, c.ioTimeout); err != nil {
		return c, fmt.Errorf("-yank.io-timeout: %w", err)
	}
	for _, sc := range scs {
		// A trial takes its boot, load and offset, then up to its budget.
		if need := sc.Budget(scenario.Params{IOTimeout: c.ioTimeout}.WithDefaults()) + 90*time.Second; need > c.timeout {
			return c, fmt.Errorf("-yank.spec-timeout %s: scenario %s may need %s (its verdict budget and 90 s to boot and load): raise -yank.spec-timeout", c.timeout, sc.Name, need)
		}
	}
	if c.shard, err = scenario.ParseShard(setting("yank.shard", "YANK_SHARD")); err != nil {
		return c, fmt.Errorf("-yank.shard %w", err)
	}
	c.matrix = flag.Lookup("yank.matrix").Value.String() == "true" || os.Getenv("YANK_MATRIX") == "1"
	if c.pool, err = libvirtPool(setting("yank.libvirt", "YANK_LIBVIRT")); err != nil {
		return c, err
	}
	c.opts = plan.Options{
		Kernels: ks, Scenarios: scs, Offsets: offsets, CutAt: cutAt, Repeats: repeats,
		Seed: seed, Jitter: jitter, Manifest: m, Fallback: fallback,
	}
	return c, nil
}
