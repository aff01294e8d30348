package engine

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/yank-dev/yank/scenario"
)

// KCIDB status for each outcome (KCIDB I/O schema v5): a kernel bug is
// FAIL, yank's or the host's trouble ERROR, a trial that tested nothing
// MISS; a removal the guest survived, at once or after a stall that
// ended, PASS.
var kcidbStatus = map[scenario.Outcome]string{
	scenario.Hang: "FAIL", scenario.Crash: "FAIL", scenario.InfraError: "ERROR",
	scenario.Missed: "MISS", scenario.Unreached: "MISS",
	scenario.Pass: "PASS", scenario.Recovered: "PASS",
	"": "ERROR", // a suite spec that ended with no verdict (timed out, say)
}

var kcidbOrigin = regexp.MustCompile(`^[a-z0-9_]+$`)

// CheckKCIDBOrigin says whether origin can name a KCIDB submitter.
func CheckKCIDBOrigin(origin string) error {
	if !kcidbOrigin.MatchString(origin) {
		return fmt.Errorf("KCIDB origin %q: want lower-case letters, digits and _ (the name of your CI system, e.g. yank_nightly)", origin)
	}
	return nil
}

// WriteKCIDB writes rows as one KCIDB I/O v5.3 report: a checkout and a
// build per kernel, a test per trial, ids under origin and the plan
// digest (so the shards of one plan, merged or not, name the same
// objects). yank's own fields are under misc.
func WriteKCIDB(w io.Writer, rows []Row, origin, digest string) error {
	if err := CheckKCIDBOrigin(origin); err != nil {
		return err
	}
	type obj = map[string]any
	report := obj{"version": obj{"major": 5, "minor": 3}}
	var checkouts, builds, tests []obj
	rates := map[string]scenario.Rate{}
	for _, c := range Cells(rows) {
		rates[c.Kernel+"\x00"+c.Scenario+"\x00"+c.Anchor+"\x00"+time.Duration(c.Offset).String()] = c.Rate
	}
	seen := map[string]bool{}
	for _, r := range rows {
		v := r.Verdict
		prefix := origin + ":" + digest + ":" + r.Kernel
		if !seen[r.Kernel] {
			seen[r.Kernel] = true
			checkouts = append(checkouts, obj{"id": prefix, "origin": origin, "tree_name": r.Kernel, "valid": true,
				"misc": obj{"kernel": r.Kernel}})
			builds = append(builds, obj{"id": prefix + ":build", "origin": origin, "checkout_id": prefix,
				"architecture": "x86_64", "config_name": "yank-minimal", "status": "PASS", "misc": obj{"kernel": r.Kernel}})
		}
		cut := scenario.CutLabel(r.Anchor, time.Duration(r.Offset))
		t := obj{
			"id":          fmt.Sprintf("%s:%s:%s:r%d", prefix, v.Scenario, cut, r.Rep),
			"origin":      origin,
			"build_id":    prefix + ":build",
			"path":        strings.TrimSuffix("yank."+v.Scenario, "."),
			"status":      kcidbStatus[v.Outcome],
			"comment":     v.Summary(),
			"duration":    time.Duration(v.Duration).Seconds(),
			"environment": obj{"comment": "host " + r.Host, "misc": obj{"host": r.Host, "accel": v.Accel}},
		}
		if t["status"] == nil {
			return fmt.Errorf("kcidb: trial %s has outcome %q, which has no KCIDB status", t["id"], v.Outcome)
		}
		if !v.Started.IsZero() {
			t["start_time"] = v.Started.UTC().Format(time.RFC3339Nano)
		}
		misc := obj{"outcome": cmp.Or(string(v.Outcome), "none"), "cut": cut, "achieved_offset": time.Duration(v.AchievedOffset).String()}
		if r.Anchor != "" {
			misc["anchor"], misc["delay"] = r.Anchor, time.Duration(r.Offset).String()
		} else {
			misc["offset"] = time.Duration(r.Offset).String()
		}
		if v.Classification != "" {
			misc["classification"] = v.Classification
		}
		if v.Window != nil {
			misc["window"] = windowColumn(v)
		}
		rate := rates[r.Kernel+"\x00"+v.Scenario+"\x00"+r.Anchor+"\x00"+time.Duration(r.Offset).String()]
		misc["hang_rate"] = obj{"hangs": rate.Hangs, "tested": rate.Tested, "lo": rate.Lo, "hi": rate.Hi}
		t["misc"] = misc
		tests = append(tests, t)
	}
	report["checkouts"], report["builds"], report["tests"] = checkouts, builds, tests
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(report)
}
