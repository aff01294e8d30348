package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/yank-dev/yank/engine"
	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/machine/libvirt"
)

// libvirtCmd is `yank libvirt`: the same matrix as `yank run`, spread over
// one or more libvirt hosts, each with a guest capacity, run concurrently
// and merged into one report.
func libvirtCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("libvirt", stderr, "usage: yank libvirt -host URI[#N] [-host URI[#N]...] [flags]\n\n"+
		"Runs kernels x scenarios x offsets like yank run, with each guest a transient\n"+
		"libvirt domain on one of the hosts (at most N at a time on each). Kernels and\n"+
		"images are uploaded through libvirt. A host that cannot be reached is skipped;\n"+
		"trials it was running are INFRA-ERROR. One merged report: a table on stdout,\n"+
		"matrix.json and matrix.txt in the artifacts dir.\n\n")
	var hosts stringList
	fs.Var(&hosts, "host", "libvirt URI[#N] to run guests on, N at a time (default 1); repeat for several hosts, e.g.\n-host qemu:///system#2 -host qemu+ssh://root@build2/system#4 -host qemu+tcp://10.0.0.7/system")
	mf := addMatrixFlags(fs)
	pool := fs.String("pool", "", "libvirt storage pool for kernels and images on each host (default yank, created as a dir pool at /var/lib/libvirt/yank when missing)")
	if err := parseFlags(fs, "libvirt", args); err != nil {
		return err
	}
	if len(hosts) == 0 {
		return errors.New("libvirt: give at least one -host URI (e.g. -host qemu:///system)")
	}
	var members []machine.PoolMember
	for _, h := range hosts {
		b, err := libvirt.Parse(h)
		if err != nil {
			return err
		}
		b.StoragePool = *pool
		members = append(members, machine.PoolMember{Backend: b})
	}
	p, err := machine.NewPool(members...)
	if err != nil {
		return err
	}
	trials, dir, progress, shard, err := mf.plan(ctx, "libvirt", stderr)
	if err != nil {
		return err
	}
	rows, err := engine.Run(ctx, engine.Config{Pool: p, Trials: trials, Dir: dir, Progress: progress, Log: stderr, Shard: shard})
	if err != nil {
		return err
	}
	if err := mf.writeKCIDB(rows, shard); err != nil {
		return err
	}
	return finishMatrix(stdout, rows, dir, "matrix.json, matrix.txt; per trial: verdict.json, timeline.log, console.log, qemu.log with the domain XML")
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, " ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
