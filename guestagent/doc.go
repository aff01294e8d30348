// Package guestagent is a host-side client for qemu-guest-agent (QGA),
// spoken over the UNIX socket of the chardev QEMU wires to the guest's
// virtio-serial port:
//
//	-chardev socket,id=qga0,path=qga.sock,server=on,wait=off
//	-device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
//
// # Protocol facts this client is built around
//
//   - QGA sends no greeting, and replies carry no id. The client keeps exactly
//     one request in flight (a mutex) and matches replies by order.
//   - Order is only trustworthy after a sync: the client writes 0xFF (which
//     resets the agent's JSON lexer; the agent answers it with a GenericError
//     "stray '\uFFFD'" reply) followed by guest-sync-delimited with a fresh
//     random id, drops everything up to the agent's 0xFF delimiter, then drops
//     reply lines until {"return": id}. It syncs on connect and again after
//     any timeout, cancellation or undecodable reply, so a reply arriving
//     late is never taken for the next command's reply.
//   - QEMU accepts the socket connection before the guest agent is running;
//     bytes just queue. A sync that times out means "agent not answering
//     (yet)" and is reported as ErrAgentSilent.
//   - guest-exec-status forgets a pid once it has reported exited:true; the
//     next query fails with ErrUnknownPID. If the reply carrying exited:true is
//     lost to a timeout, the exit status is gone for good.
//   - With CaptureOutput, "exited" only turns true once the child has exited
//     and both pipes are closed. A background grandchild that inherits the
//     captured stdout keeps it false forever: redirect children's output
//     (see Background), or do not capture.
//   - QGA has no signal command; Signal runs `kill` in the guest.
//   - guest-shutdown sends no reply on success; EOF or silence after sending
//     it counts as success.
//   - Guest files are stdio FILE*s: a write error from the kernel (EINVAL
//     from a sysfs store) shows up at guest-file-flush/close, not at
//     guest-file-write. If fclose fails, QGA reports the error but keeps the
//     (now dangling) handle, so this client never closes a handle twice.
//   - Omit "arguments" rather than sending null: QGA rejects null.
//
// Every method takes a context. If it has no deadline, the client's default
// timeout (WithTimeout, 10 s unless set) applies to the whole method.
//
// With WithLogger every agent action is logged; slog records carry the host
// timestamp, which is what lines agent actions up with QMP events and the
// guest console.
package guestagent
