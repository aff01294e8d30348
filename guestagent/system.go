package guestagent

import (
	"context"
	"log/slog"
	"time"
)

// Info is the guest-info reply.
type Info struct {
	Version           string           `json:"version"`
	SupportedCommands []CommandSupport `json:"supported_commands"`
}

// CommandSupport describes one agent command.
type CommandSupport struct {
	Name            string `json:"name"`
	Enabled         bool   `json:"enabled"`
	SuccessResponse bool   `json:"success-response"` // false: no reply on success
}

// Supports reports whether the agent has name enabled.
func (i Info) Supports(name string) bool {
	for _, c := range i.SupportedCommands {
		if c.Name == name {
			return c.Enabled
		}
	}
	return false
}

// Ping checks that the agent answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.Do(ctx, "guest-ping", nil, nil)
}

// Info returns the agent version and its commands.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.Do(ctx, "guest-info", nil, &info)
	return info, err
}

// Shutdown asks the guest to power down, halt or reboot (mode "powerdown",
// "halt", "reboot"; "" is the agent's default, powerdown). QGA replies only
// on failure, so EOF or silence for the shutdown grace period after sending
// is success; an error reply is returned (QGA 7.2 answers a blocked
// guest-shutdown with CommandNotFound "Command ... has been disabled").
func (c *Client) Shutdown(ctx context.Context, mode string) error {
	ctx, cancel := c.withDefault(ctx)
	defer cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	const command = "guest-shutdown"
	start := time.Now()
	if err := c.ready(ctx, command); err != nil {
		return err
	}
	var args any
	if mode != "" {
		args = map[string]string{"mode": mode}
	}
	c.log(slog.LevelInfo, "qga shutdown", "mode", mode)
	if err := c.send(ctx, command, args); err != nil {
		return c.ioError(ctx, command, start, err)
	}
	// Whatever follows, a late error reply may still arrive: resync later.
	c.needSync = true
	grace, cancelGrace := context.WithTimeout(ctx, c.opts.shutdownGrace)
	defer cancelGrace()
	rep, err := c.recv(grace)
	switch {
	case err == nil && rep.Err != nil:
		rep.Err.Command = command
		return rep.Err
	case err == nil:
		return nil // an agent that does reply
	case isConnError(err) && !isTimeout(err):
		c.dropConn() // the guest went away, as asked
	}
	c.log(slog.LevelInfo, "qga shutdown sent, no reply (expected)", "err", err)
	return nil
}
