package scenario

import (
	"fmt"
	"strings"
)

// samplerInterval is the sampler's sleep between looks; one look costs
// ~5-10 ms of guest CPU under TCG (shell builtins only, one sleep fork).
const samplerInterval = "0.05"

// samplerLimit bounds the sampler if the host never stops it (~2 min).
const samplerLimit = 2000

// samplerScript is the in-guest sampler: every ~60 ms it prints one
// YANK-S line to /dev/kmsg with the trigger's state (running, and the
// first of funcs found in its /proc/PID/stack, "?" when the stack read
// came back empty, as it does while the task is on a CPU), Dirty and Writeback from
// /proc/meminfo, the disk's in-flight requests and whether the device is
// still bound. It reads only /proc and sysfs attributes that never block
// on the device, and uses shell builtins (read, case, echo) so that it
// costs the racing tasks as little CPU as possible. It stops when
// /run/yank/sampler.stop appears.
func samplerScript(bdf, disk string, funcs []string) string {
	return fmt.Sprintf(`B=%s; D=%s; F=%q; R=/run/yank; N=0
while [ ! -e $R/sampler.stop ] && [ $N -lt %d ]; do
  N=$((N+1)); P=; t=none; in=-; w=-
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
  echo "YANK-S n=$N trig=$t in=$in wchan=${w:--} dirty=$dirty wb=$wb inflight=$inf dev=$dev" > /dev/kmsg
  sleep %s
done
`, bdf, disk, strings.Join(funcs, " "), samplerLimit, samplerInterval)
}
