// Package journal is an append-only, host-timestamped record log that any
// number of readers can wait on without ever blocking the writer.
//
// yank keeps QMP events and guest console lines in journals so that a
// scenario can ask "has X happened since mark M?" without racing the
// producer, and so that the evidence timeline can be written out afterwards.
package journal

import (
	"context"
	"sync"
	"time"
)

// Entry is one record with the host time it was appended and its position.
type Entry[T any] struct {
	Seq  int       // 0-based position in the journal
	Time time.Time // host wall-clock time of append
	Item T
}

// Journal is safe for concurrent use. The zero value is not usable: use New.
type Journal[T any] struct {
	mu      sync.Mutex
	entries []Entry[T]
	changed chan struct{} // closed and replaced on every append or close
	closed  bool
	err     error
}

// New returns an empty journal.
func New[T any]() *Journal[T] {
	return &Journal[T]{changed: make(chan struct{})}
}

// Append records item with the current host time and wakes all waiters.
func (j *Journal[T]) Append(item T) Entry[T] {
	return j.AppendAt(time.Now(), item)
}

// AppendAt records item with a caller-provided time (for records whose
// receive time was taken earlier, e.g. at the start of a line).
func (j *Journal[T]) AppendAt(t time.Time, item T) Entry[T] {
	j.mu.Lock()
	defer j.mu.Unlock()
	e := Entry[T]{Seq: len(j.entries), Time: t, Item: item}
	if j.closed {
		return e
	}
	j.entries = append(j.entries, e)
	close(j.changed)
	j.changed = make(chan struct{})
	return e
}

// Close marks the journal finished (the producer is gone); waiters that have
// not found their record return err (or ErrClosed when err is nil).
func (j *Journal[T]) Close(err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	if err == nil {
		err = ErrClosed
	}
	j.closed, j.err = true, err
	close(j.changed)
}

// ErrClosed is returned by Wait when the producer finished without error.
var ErrClosed = closedError{}

type closedError struct{}

func (closedError) Error() string { return "journal closed: producer finished" }

// Mark returns the sequence number the next appended entry will get; pass it
// to Wait to consider only records appended after this point.
func (j *Journal[T]) Mark() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.entries)
}

// Snapshot returns a copy of all entries.
func (j *Journal[T]) Snapshot() []Entry[T] {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Entry[T](nil), j.entries...)
}

// Since returns a copy of the entries from mark on.
func (j *Journal[T]) Since(mark int) []Entry[T] {
	j.mu.Lock()
	defer j.mu.Unlock()
	if mark < 0 {
		mark = 0
	}
	if mark >= len(j.entries) {
		return nil
	}
	return append([]Entry[T](nil), j.entries[mark:]...)
}

// Wait returns the first entry at or after mark for which match returns
// true. It returns ctx's error when ctx ends first, and the close error when
// the journal is closed with no match.
func (j *Journal[T]) Wait(ctx context.Context, mark int, match func(T) bool) (Entry[T], error) {
	next := mark
	for {
		j.mu.Lock()
		for ; next < len(j.entries); next++ {
			if match(j.entries[next].Item) {
				e := j.entries[next]
				j.mu.Unlock()
				return e, nil
			}
		}
		changed, closed, err := j.changed, j.closed, j.err
		j.mu.Unlock()
		if closed {
			return Entry[T]{}, err
		}
		select {
		case <-ctx.Done():
			return Entry[T]{}, ctx.Err()
		case <-changed:
		}
	}
}

// Follow streams entries from mark on to the returned channel until ctx ends
// or the journal closes. A slow reader only delays itself: the journal keeps
// everything, so the writer never blocks.
func (j *Journal[T]) Follow(ctx context.Context, mark int) <-chan Entry[T] {
	out := make(chan Entry[T])
	go func() {
		defer close(out)
		next := mark
		for {
			j.mu.Lock()
			pending := append([]Entry[T](nil), j.entries[min(next, len(j.entries)):]...)
			changed, closed := j.changed, j.closed
			j.mu.Unlock()
			for _, e := range pending {
				select {
				case out <- e:
					next = e.Seq + 1
				case <-ctx.Done():
					return
				}
			}
			if len(pending) > 0 {
				continue
			}
			if closed {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return out
}
