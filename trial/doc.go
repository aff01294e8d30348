// Package trial runs one trial of a scenario on one kernel: guest up
// (machine), I/O load, driver unbind (or writeback) started through the
// guest agent, the removal from the host at the offset (qmp), then probes
// until scenario.Decide gives a verdict, and the evidence to back it: the
// guest's own samples around the cut (sampler.go), every probe
// (probes.jsonl), the stuck tasks' stacks, the console and a timeline
// that lines up host notes, QMP events and console lines (evidence.go).
package trial
