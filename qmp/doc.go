// Package qmp is yank's QEMU Machine Protocol client and its device
// removal primitives (graceful device_del and a host-side surprise removal).
//
// It implements go-qemu's qmp.Monitor interface so go-qemu helpers and its
// libvirt-backed monitor stay interchangeable with it, but replaces
// go-qemu's socket monitor, which blocks on unread events, dies on replies
// over 64 KiB and takes no context (see docs/DESIGN.md).
package qmp
