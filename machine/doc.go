// Package machine runs one QEMU guest: a typed Spec turned into QEMU
// arguments, the guest's lifecycle (start, wait for the agent, shut down,
// kill), a host-timestamped console log, and cleanup of the guest and its
// private runtime directory on every exit path. A Backend runs the guest:
// Local, a QEMU child process, or another package's (machine/libvirt); each
// gives the same Machine.
package machine
