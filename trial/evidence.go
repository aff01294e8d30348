package trial

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/yank-dev/yank/machine"
	"github.com/yank-dev/yank/scenario"
)

// Evidence files in a trial's artifacts dir:
//
//	verdict.json   the Verdict
//	console.log    guest serial console, host-timestamped (machine)
//	qemu.log       QEMU's command line and stderr (machine)
//	host.log       yank's actions, QMP commands and agent calls (slog)
//	events.jsonl   QMP events with host receive time and QEMU's timestamp
//	timeline.log   host notes, QMP events and console lines merged by time
//	stacks.txt     stacks of the stuck tasks (HANG) or the crash text
//	samples.log    the in-guest sampler's YANK-S lines (from dmesg)
//	probes.jsonl   every probe after the removal (scenario.Probe): with
//	               console.log and events.jsonl, what the verdict was
//	               decided from (scenario's decide_test replays them)

func (r *runner) finish() scenario.Verdict {
	if r.v.Outcome == "" {
		r.infra("internal error: trial ended without a verdict")
	}
	if r.m != nil {
		r.v.Guest = scenario.ReadGuestTimes(r.m.Console.Lines(0), r.t.Scenario.Removal, r.cutStopped)
		if r.v.Anchor != nil {
			r.v.Anchor.HitGuest = r.anchorGuestTime(r.v.Guest)
		}
		if r.v.Window == nil && r.v.Outcome != scenario.InfraError {
			// A CRASH's guest may still answer; bounded either way.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			r.v.Window = r.window(ctx)
			cancel()
		}
		if rc := r.v.Guest.TriggerRC; rc != nil && *rc != 0 && r.t.Scenario.Trigger != scenario.TriggerNone {
			// An unbind that returned an error did not run the race.
			r.v.Reason += fmt.Sprintf(" [the %s trigger exited %d: see trigger.log]", r.t.Scenario.Trigger, *rc)
		}
	}
	r.v.Timeline.Completed = time.Now()
	r.v.Duration = scenario.Duration(r.v.Timeline.Completed.Sub(r.v.Started))
	if r.t.Artifacts != "" {
		if err := r.writeEvidence(); err != nil {
			r.log.Error("writing evidence", "err", err)
			r.v.Reason += fmt.Sprintf(" (evidence incomplete: %v)", err)
		}
	}
	return r.v
}

func (r *runner) close() {
	if r.m != nil {
		r.m.Close()
	}
	if r.logF != nil {
		r.logF.Close()
	}
}

type timelineEntry struct {
	t      time.Time
	source string
	text   string
}

func (r *runner) writeEvidence() error {
	dir := r.t.Artifacts
	var entries []timelineEntry
	for _, n := range r.notes {
		entries = append(entries, timelineEntry{n.t, "host", n.msg})
	}
	if r.m != nil {
		var events strings.Builder
		for _, e := range r.m.QMP.EventJournal().Snapshot() {
			data, err := json.Marshal(e.Item.Data)
			if err != nil {
				return fmt.Errorf("QMP event %s: %w", e.Item.Event, err)
			}
			qemuTime := time.Unix(e.Item.Timestamp.Seconds, e.Item.Timestamp.Microseconds*1000).UTC()
			line, err := json.Marshal(map[string]any{
				"host_time": e.Time.UTC().Format(machine.TimeFormat), "qemu_time": qemuTime.Format(machine.TimeFormat),
				"event": e.Item.Event, "data": e.Item.Data,
			})
			if err != nil {
				return fmt.Errorf("QMP event %s: %w", e.Item.Event, err)
			}
			events.Write(append(line, '\n'))
			entries = append(entries, timelineEntry{e.Time, "qmp", e.Item.Event + " " + string(data)})
		}
		if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte(events.String()), 0o600); err != nil {
			return err
		}
		for _, l := range r.m.Console.Lines(0) {
			entries = append(entries, timelineEntry{l.Time, "console", l.Item})
		}
	}
	if r.samples != nil {
		if err := os.WriteFile(filepath.Join(dir, "samples.log"), []byte(strings.Join(r.samples, "\n")+"\n"), 0o600); err != nil {
			return err
		}
		// On the timeline at the host time they map to through T0.
		if t0, t0Host := r.v.Guest.T0, r.v.Guest.T0Host; t0 != nil && !t0Host.IsZero() {
			for _, s := range scenario.ParseSamples(r.samples) {
				entries = append(entries, timelineEntry{t0Host.Add(time.Duration(s.GuestTime) - time.Duration(*t0)), "sample", s.String()})
			}
		}
	}
	var probes strings.Builder
	for _, p := range r.probes {
		line, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		probes.Write(append(line, '\n'))
	}
	if len(r.probes) > 0 {
		if err := os.WriteFile(filepath.Join(dir, "probes.jsonl"), []byte(probes.String()), 0o600); err != nil {
			return err
		}
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].t.Before(entries[j].t) })
	var tl strings.Builder
	for _, e := range entries {
		fmt.Fprintf(&tl, "%s %-7s %s\n", e.t.UTC().Format(machine.TimeFormat), e.source, e.text)
	}
	if err := os.WriteFile(filepath.Join(dir, "timeline.log"), []byte(tl.String()), 0o600); err != nil {
		return err
	}
	var stacks strings.Builder
	for _, t := range r.v.Stuck {
		fmt.Fprintf(&stacks, "pid %d %s (%s) state %s wchan %s, context switches %d -> %d\n", t.PID, t.Comm, t.Role, t.State, t.WChan, t.CtxtSwitches[0], t.CtxtSwitches[1])
		if t.StackError != "" {
			fmt.Fprintf(&stacks, "    (stack not read: %s)\n", t.StackError)
		}
		for _, f := range t.Stack {
			fmt.Fprintf(&stacks, "    %s\n", f)
		}
	}
	if r.v.Crash != nil {
		stacks.WriteString(r.v.Crash.Text)
	}
	if stacks.Len() > 0 {
		if err := os.WriteFile(filepath.Join(dir, "stacks.txt"), []byte(stacks.String()), 0o600); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(r.v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "verdict.json"), append(b, '\n'), 0o600)
}
