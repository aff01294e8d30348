// Package libvirt is yank's libvirt backend: it runs a machine.Spec as a
// transient domain on any libvirtd yank can reach (Backend), with QMP and
// the guest agent carried through libvirt (QMPTransport, AgentTransport),
// the serial console through a libvirt stream, and the boot files uploaded
// into a storage pool. Apart from its test daemon (libvirttest) it is the
// only yank package that imports go-libvirt (here as golibvirt).
package libvirt
