package guestagent

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
)

// randomID picks a sync id. Kept below 2^31 so no JSON layer can round it.
func randomID() int64 { return 1 + rand.Int64N(1<<31-1) }

// isTimeout reports a deadline hit by armDeadline (ctx expiry or cancel).
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// isConnError reports an error after which the connection is useless.
func isConnError(err error) bool {
	var opErr *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.As(err, &opErr)
}

// ctxErr is ctx's error, or DeadlineExceeded when the socket deadline fired
// a moment before the context noticed its own.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return context.DeadlineExceeded
}
