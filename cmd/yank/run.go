package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/machine"
)

// Defaults for `yank run` with no arguments: the kernels with and without
// the RFC and with the RFC plus its virtio consumer, the virtio-blk
// scenarios (scenario.Defaults), each at its default offsets.
var defaultKernels = []string{"stock", "rfc-v3", "rfc-v3-virtio"}

// runCmd is `yank run`: the matrix on one local QEMU guest at a time (so
// the timing of one trial never competes with another's).
func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stderr, "usage: yank run [flags]\n\nBoots a guest per trial, starts the scenario's trigger through the guest agent,\n"+
		"removes the disk from the host at the offset and prints a verdict table and\nthe hang rate of each kernel x scenario x offset.\n\n")
	mf := addMatrixFlags(fs)
	if err := parseFlags(fs, "run", args); err != nil {
		return err
	}
	trials, dir, progress, shard, err := mf.plan(ctx, "run", stderr)
	if err != nil {
		return err
	}
	pool, err := machine.NewPool(machine.PoolMember{Backend: machine.Local, Capacity: 1})
	if err != nil {
		return err
	}
	rows, err := engine.Run(ctx, engine.Config{Pool: pool, Trials: trials, Dir: dir, Progress: progress, Log: stderr, Shard: shard})
	if err != nil {
		return err
	}
	if err := mf.writeKCIDB(rows, shard); err != nil {
		return err
	}
	return finishMatrix(stdout, rows, dir, "matrix.json, matrix.txt; per trial: verdict.json, timeline.log, console.log, stacks.txt")
}

// newFlagSet is a flag set that prints head before the defaults on -h.
func newFlagSet(name string, stderr io.Writer, head string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, head)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses flags only: a positional argument is an error.
func parseFlags(fs *flag.FlagSet, cmd string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags only; see yank %s -h)", cmd, fs.Arg(0), cmd)
	}
	return nil
}
