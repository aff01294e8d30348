// Package scenario runs one trial: guest up, I/O load, driver unbind through
// the agent, removal at an offset, and a verdict with evidence.
package scenario
