package guestagent

import (
	"log/slog"
	"time"
)

// Option configures a Client.
type Option func(*options)

type options struct {
	timeout       time.Duration
	syncAttempt   time.Duration
	shutdownGrace time.Duration
	chunkSize     int
	logger        *slog.Logger
}

func defaultOptions() options {
	return options{
		timeout:       10 * time.Second,
		syncAttempt:   time.Second,
		shutdownGrace: 2 * time.Second,
		chunkSize:     1 << 20,
	}
}

// WithTimeout sets the deadline applied to a method whose context has none
// (default 10 s). For Wait and Run it bounds the whole wait.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithSyncAttemptTimeout sets how long Dial waits for one sync reply before
// sending another (default 1 s). Dial keeps trying until its context ends.
func WithSyncAttemptTimeout(d time.Duration) Option {
	return func(o *options) { o.syncAttempt = d }
}

// WithShutdownGrace sets how long Shutdown waits for an error reply before
// taking silence as success (default 2 s).
func WithShutdownGrace(d time.Duration) Option { return func(o *options) { o.shutdownGrace = d } }

// WithChunkSize sets the byte count per guest-file-read/-write (default 1 MiB).
func WithChunkSize(n int) Option { return func(o *options) { o.chunkSize = n } }

// WithLogger logs every agent action: commands at Debug, resyncs, execs,
// exits and file writes at Info, timeouts at Warn. Records carry host time.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
