package qmp

import (
	"context"
	"fmt"
)

// VirtioBackendPath is the QOM path of the virtio device behind the PCI
// device with qdev id id (virtio-blk-pci, virtio-scsi-pci).
func VirtioBackendPath(id string) string { return "/machine/peripheral/" + id + "/virtio-backend" }

// VirtioStatus is the part of x-query-virtio-status yank reads.
type VirtioStatus struct {
	NumVQs int `json:"num-vqs"`
}

// QueryVirtioStatus runs x-query-virtio-status (QEMU 7.2 on; an unstable
// "x-" command) on the virtio device at path.
func (c *Client) QueryVirtioStatus(ctx context.Context, path string) (VirtioStatus, error) {
	var s VirtioStatus
	err := c.Execute(ctx, "x-query-virtio-status", map[string]string{"path": path}, &s)
	return s, err
}

// VirtioQueue is one virtqueue as the device sees it
// (x-query-virtio-queue-status). InUse counts the requests the device has
// taken from the ring and not completed yet: I/O the guest is waiting for.
type VirtioQueue struct {
	Index        int `json:"queue-index"`
	InUse        int `json:"inuse"`
	LastAvailIdx int `json:"last-avail-idx"`
	UsedIdx      int `json:"used-idx"`
}

// QueryVirtioQueue runs x-query-virtio-queue-status on queue q of the
// virtio device at path.
func (c *Client) QueryVirtioQueue(ctx context.Context, path string, q int) (VirtioQueue, error) {
	var s VirtioQueue
	err := c.Execute(ctx, "x-query-virtio-queue-status", map[string]any{"path": path, "queue": q}, &s)
	if err != nil {
		return s, fmt.Errorf("virtqueue %d of %s: %w", q, path, err)
	}
	return s, nil
}
