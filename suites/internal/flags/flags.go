// Package flags defines the hotunplug suite's -yank.* flags and, by
// importing Ginkgo, its -ginkgo.* flags, for every test binary under
// suites/. `go test ./suites/... -args -yank.kernels=...` hands the same
// flags to every package there; a package that did not define them would
// fail with "flag provided but not defined". The suite reads the values
// with flag.Lookup, falling back to the environment variable each names.
package flags

import (
	"flag"
	"time"

	_ "github.com/onsi/ginkgo/v2" // registers the -ginkgo.* flags
)

func init() {
	flag.String("yank.kernels", "", "comma-separated kernels: variants (stock,rfc-v3), bzImage paths, kernel trees, BASE+SERIES (a variant plus .patch files, git format-patch dirs or mboxes), each optionally NAME=... (env YANK_KERNELS; default: every kernel in suites/expect/expectations.json)")
	flag.String("yank.kernel", "", "one more kernel, any form -yank.kernels takes (env YANK_KERNEL); replaces the default list")
	flag.String("yank.variants", "", "a variants file (the schema of kernels/variants.json) adding to the built-in variants (env YANK_VARIANTS; default ./yank-variants.json in the package dir if present)")
	flag.String("yank.scenarios", "", "comma-separated scenarios (env YANK_SCENARIOS; default: the virtio-blk ones, or -yank.scenario-file's own)")
	flag.String("yank.scenario-file", "", "a JSON file of your own scenarios, joining the built-in ones (env YANK_SCENARIO_FILE; schema: scenario/scenarios.json, examples: scenario/examples)")
	flag.Duration("yank.io-timeout", 0, "the disk driver's I/O timeout, for devices that have one (env YANK_IO_TIMEOUT; nvme default 5s)")
	flag.String("yank.offsets", "", "comma-separated removal offsets for every scenario, e.g. 0.5s,1s,2s (env YANK_OFFSETS; default: each scenario's own)")
	flag.String("yank.cut-at", "", "where the cut lands: a kernel function the guest reaches (SYMBOL, SYMBOL+0xOFF, optionally @N for the N-th hit), cut -yank.offsets after its hit; offset for cuts at -yank.offsets after T0 (env YANK_CUT_AT; default: each scenario's own cut_at, else offsets)")
	flag.Duration("yank.anchor-budget", 0, "an anchored trial whose anchor is not hit this long after T0 is UNREACHED, with no cut (env YANK_ANCHOR_BUDGET; default 20s)")
	flag.Int("yank.repeats", 0, "trials per kernel x scenario x offset (env YANK_REPEATS; default 1)")
	flag.Int64("yank.seed", 0, "seed for the trial order and offset jitter (env YANK_SEED; default: Ginkgo's --seed)")
	flag.Duration("yank.jitter", 0, "move each trial's offset by a seeded amount in [-jitter, +jitter] (env YANK_JITTER)")
	flag.String("yank.expect", "", "expectation for kernels not in the manifest: bad, fixed or none (env YANK_EXPECT; default none: fail only on CRASH or INFRA-ERROR, skip the rest as not judged)")
	flag.String("yank.artifacts", "", "evidence dir, kept (env YANK_ARTIFACTS; default: a temp dir keeping only failed trials' evidence)")
	flag.Bool("yank.matrix", false, "with no label filter, run every planned trial instead of the smoke subset (env YANK_MATRIX=1)")
	flag.String("yank.libvirt", "", "run guests on libvirt hosts instead of local QEMU: comma-separated URIs with capacity, e.g. qemu:///system#2 (env YANK_LIBVIRT; the capacity is per ginkgo process)")
	flag.Duration("yank.stall-window", 0, "HANG needs a task unmoved in D state with no I/O completing for this long on both clocks (env YANK_STALL_WINDOW; default 1s)")
	flag.Duration("yank.settle", 0, "PASS needs the guest quiet for this long (env YANK_SETTLE; default 500ms)")
	flag.Duration("yank.probe-interval", 0, "time between looks into the guest after the removal (env YANK_PROBE_INTERVAL; default 150ms)")
	flag.Duration("yank.recovered-after", 0, "RECOVERED needs a stall this long that ended before the device's hang horizon; a shorter one is part of a PASS (env YANK_RECOVERED_AFTER; default 3s)")
	flag.Bool("yank.no-snapshot", false, "boot every trial cold instead of restoring a snapshot saved right before the trigger by each cell's first trial (env YANK_NO_SNAPSHOT=1)")
	flag.String("yank.shard", "", "run only shard K of N of the planned trials (K/N, e.g. 1/2): whole cells, balanced by expected trial time, the same split as yank run -shard (env YANK_SHARD)")
	flag.Duration("yank.spec-timeout", 5*time.Minute, "timeout of one trial's spec (env YANK_SPEC_TIMEOUT)")
}
