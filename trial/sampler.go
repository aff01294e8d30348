package trial

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// samplerInterval is the sampler's sleep between looks; one look costs
// ~5-10 ms of guest CPU under TCG (shell builtins only, one sleep fork).
const samplerInterval = "0.05"

// samplerLimit bounds the sampler if the host never stops it (~2 min).
const samplerLimit = 2000

// samplerScript is the in-guest sampler: every ~65 ms it logs one
// YANK-S line to /dev/kmsg with the trigger's state (running, and the
// first of funcs found in its /proc/PID/stack, "?" when the stack read
// came back empty, as it does while the task is on a CPU), Dirty and
// Writeback from /proc/meminfo, the disk's in-flight requests and whether
// the device is still bound. The lines go in at KERN_DEBUG, below the
// console loglevel (7, set by the trial): they stay in the kernel log
// with printk stamps on the same clock as YANK-T0 and pciehp's messages,
// and never load the serial console (a backed-up console spins the vCPU
// with interrupts off in serial8250_console_write; seen on libvirt's
// console stream under host load). The host reads them back with dmesg
// (readSamples). The sampler reads only /proc and sysfs attributes that
// never block on the device, and uses shell builtins (read, case, echo)
// so that it costs the racing tasks little CPU. It creates
// /run/yank/sampler.ready after its first look and stops when
// /run/yank/sampler.stop appears.
func samplerScript(bdf, disk string, funcs []string) string {
	return fmt.Sprintf(`%s
while [ ! -e $R/sampler.stop ] && [ $N -lt %d ]; do
  N=$((N+1))
%s
  [ $N = 1 ] && : > $R/sampler.ready
  sleep %s
done
`, lookVars(bdf, disk, "/run/yank", funcs), samplerLimit, lookScript("/dev/kmsg"), samplerInterval)
}

// lookVars sets what lookScript reads: the device, the disk, the
// window's functions, the trial's guest dir and the look's number N.
func lookVars(bdf, disk, dir string, funcs []string) string {
	return fmt.Sprintf(`B=%s; D=%s; F=%q; R=%s; N=0`, bdf, disk, strings.Join(funcs, " "), dir)
}

// lookScript is one look, the sampler's and the trigger's (which takes
// look 0 right before its T0 line: an anchored cut often comes within
// milliseconds of T0, before the sampler's next look, and on a busy host
// the sampler's last one can be older than scenario.MaxSampleGap; look 0
// is then the I/O and device state just before the anchor's hit). kmsg
// is /dev/kmsg, or a plain file in tests (>> collects every line).
func lookScript(kmsg string) string {
	return fmt.Sprintf(`  P=; t=none; in=-; w=-
  read P 2>/dev/null < $R/trigger.pid
  if [ -n "$P" ]; then
    t=exited
    { while read k v r; do if [ "$k" = State: ]; then case $v in Z|X) ;; *) t=running;; esac; break; fi; done; } 2>/dev/null < /proc/$P/status
    if [ $t = running ]; then
      { read w; } 2>/dev/null < /proc/$P/wchan
      nf=0
      { while read a fn; do nf=$((nf+1)); for f in $F; do case $fn in $f+*) [ $in = - ] && in=$f;; esac; done; done; } 2>/dev/null < /proc/$P/stack
      [ $nf = 0 ] && in=?
    fi
  fi
  dirty=0; wb=0
  while read k v u; do case $k in Dirty:) dirty=$v;; Writeback:) wb=$v;; esac; done < /proc/meminfo
  inf=-; { read r x && inf=$r/$x; } 2>/dev/null < /sys/block/$D/inflight
  dev=gone; if [ -e /sys/bus/pci/devices/$B ]; then dev=present; [ -e /sys/bus/pci/devices/$B/driver ] && dev=bound; fi
  echo "<7>YANK-S n=$N trig=$t in=$in wchan=${w:--} dirty=$dirty wb=$wb inflight=$inf dev=$dev" >> %s`, kmsg)
}

// samplerDump prints the sampler's lines from the kernel log (the oldest
// may have rotated out of a small log buffer; the ones around the cut are
// recent).
const samplerDump = "dmesg | grep -F YANK-S"

// readSamples reads the sampler's lines back once (bounded: the agent may
// be gone). An error is kept and reported with the window.
func (r *runner) readSamples(ctx context.Context) ([]string, error) {
	if r.samples != nil || r.samplesErr != nil {
		return r.samples, r.samplesErr
	}
	if r.m == nil || r.m.Exited() {
		r.samplesErr = errors.New("the guest is gone")
		return nil, r.samplesErr
	}
	out, err := r.guest(ctx, "reading the sampler's lines (dmesg)", samplerDump, 10*time.Second)
	if err != nil {
		r.samplesErr = err
		return nil, err
	}
	r.samples = strings.Split(strings.TrimRight(out, "\n"), "\n")
	return r.samples, nil
}

// refreshSamples reads the sampler's lines again once the verdict is
// near and adds those the early read (readSamplesEarly) did not have, by
// sequence number: samples.log then runs to the end and still holds the
// looks around the cut, even if they have rotated out of the kernel log
// since. A failed read keeps what there is.
func (r *runner) refreshSamples(ctx context.Context) {
	if r.samples == nil || r.m == nil || r.m.Exited() {
		return
	}
	out, err := r.guest(ctx, "re-reading the sampler's lines (dmesg)", samplerDump, 10*time.Second)
	if err != nil {
		r.log.Warn("sampler lines not re-read", "err", err)
		return
	}
	last := 0
	for _, s := range scenario.ParseSamples(r.samples) {
		last = max(last, s.Seq)
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if ss := scenario.ParseSamples([]string{l}); len(ss) == 1 && ss[0].Seq > last {
			r.samples = append(r.samples, l)
		}
	}
}
