// Package scenario runs one trial: guest up, I/O load, driver unbind (or
// writeback) started through the guest agent, a removal from the host at a
// timed offset, and a verdict (PASS, HANG, MISSED, CRASH, INFRA-ERROR)
// with the evidence to back it: the guest's own samples around the cut
// (window.go, sampler.go), printk times of the milestones, the stuck
// tasks' stacks and context-switch counts, and the console.
package scenario
