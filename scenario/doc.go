// Package scenario is yank's data and its rules, with no I/O of its own:
// the scenario catalog (scenarios.json: trigger, load, removal, offsets
// and the window each scenario exists for), a trial's knobs (Params), the
// verdict and its evidence types, the matrix a run covers (Matrix.Expand,
// Planned.Dir), and the pure decisions: Decide (PASS, HANG, MISSED,
// CRASH, INFRA-ERROR from probes, console lines and QMP events),
// JudgeWindow (where the cut landed), ScanConsole and RateOf.
//
// It imports nothing that starts or talks to a guest, so reports,
// expectations and plans depend on it alone; package trial runs a
// scenario on a guest and package engine runs matrices.
package scenario
