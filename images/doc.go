// Package images builds the guest initramfs yank boots: busybox-static with
// its applet links, Debian's real qemu-guest-agent with the shared libraries
// it needs, optional kernel modules and extra host binaries, and an /init
// that starts the agent on its virtio-serial port and prints ReadyMarker on
// the console.
//
// Images are gzip-compressed newc cpio archives, built deterministically and
// cached by the SHA-256 of their inputs (see Build), so two runs with the same
// host files share one image and a changed library gives a new one.
package images
