package guestagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ReadFile reads a whole guest file with guest-file-open/-read/-close.
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	h, err := c.openFile(ctx, path, "r")
	if err != nil {
		return nil, err
	}
	defer c.closeFile(ctx, h, path) // read errors matter more than close errors

	var data []byte
	for {
		var ret struct {
			Count int    `json:"count"`
			Buf   []byte `json:"buf-b64"`
			EOF   bool   `json:"eof"`
		}
		args := map[string]int64{"handle": h, "count": int64(c.opts.chunkSize)}
		if err := c.Do(ctx, "guest-file-read", args, &ret); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		data = append(data, ret.Buf...)
		// count 0 without eof would loop forever on an empty pipe: stop.
		if ret.EOF || ret.Count == 0 {
			return data, nil
		}
	}
}

// WriteFile writes data to a guest file opened with an fopen mode ("w",
// "a", ...; "" means "w"), then flushes and closes it, so write errors
// surface here.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte, mode string) error {
	if mode == "" {
		mode = "w"
	}
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	h, err := c.openFile(ctx, path, mode)
	if err != nil {
		return err
	}
	for len(data) > 0 {
		chunk := data[:min(len(data), c.opts.chunkSize)]
		if err := c.writeChunk(ctx, h, chunk); err != nil {
			c.closeFile(ctx, h, path)
			return fmt.Errorf("writing %s: %w", path, err)
		}
		data = data[len(chunk):]
	}
	return c.flushAndClose(ctx, h, path)
}

// WriteSysfs writes value to a sysfs attribute, like `echo -n value > path`.
// The value goes out in a single write(2) at flush time (QGA buffers with
// stdio), which is where the kernel's store() error appears; the returned
// error then matches the errno, e.g. errors.Is(err, syscall.EINVAL).
func (c *Client) WriteSysfs(ctx context.Context, path, value string) error {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	c.log(slog.LevelInfo, "qga sysfs write", "path", path, "value", value)
	h, err := c.openFile(ctx, path, "w")
	if err != nil {
		return fmt.Errorf("sysfs write %q to %s: %w", value, path, err)
	}
	if err := c.writeChunk(ctx, h, []byte(value)); err != nil {
		c.closeFile(ctx, h, path)
		return fmt.Errorf("sysfs write %q to %s: %w", value, path, err)
	}
	if err := c.flushAndClose(ctx, h, path); err != nil {
		return fmt.Errorf("sysfs write %q to %s: %w", value, path, err)
	}
	return nil
}

func (c *Client) openFile(ctx context.Context, path, mode string) (int64, error) {
	var h int64
	err := c.Do(ctx, "guest-file-open", map[string]string{"path": path, "mode": mode}, &h)
	return h, err
}

func (c *Client) writeChunk(ctx context.Context, h int64, chunk []byte) error {
	var ret struct {
		Count int `json:"count"`
	}
	args := struct {
		Handle int64  `json:"handle"`
		Buf    []byte `json:"buf-b64"`
	}{h, chunk}
	if err := c.Do(ctx, "guest-file-write", args, &ret); err != nil {
		return err
	}
	if ret.Count != len(chunk) {
		return fmt.Errorf("short write: %d of %d bytes", ret.Count, len(chunk))
	}
	return nil
}

// flushAndClose flushes explicitly so a write error is reported by flush;
// the handle is then closed exactly once whatever happens.
func (c *Client) flushAndClose(ctx context.Context, h int64, path string) error {
	flushErr := c.Do(ctx, "guest-file-flush", map[string]int64{"handle": h}, nil)
	closeErr := c.closeFile(ctx, h, path)
	if flushErr != nil {
		return flushErr
	}
	return closeErr
}

// closeFile closes a handle once. QGA keeps a dangling handle if fclose
// fails, so a failed close is never retried. It still runs after ctx
// expired, briefly, so a timed-out read does not leak the guest handle.
func (c *Client) closeFile(ctx context.Context, h int64, path string) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
	}
	err := c.Do(ctx, "guest-file-close", map[string]int64{"handle": h}, nil)
	var qerr *Error
	if err != nil && !errors.As(err, &qerr) {
		c.log(slog.LevelWarn, "qga close failed", "path", path, "handle", h, "err", err)
	}
	return err
}
