package kernels

import (
	"testing"
	"time"
)

func TestETA(t *testing.T) {
	for _, c := range []struct {
		done, estimate int
		elapsed        time.Duration
		want           string
	}{
		{0, 1000, time.Minute, ""},        // nothing done yet
		{40, 1000, time.Minute, ""},       // under 5 %
		{500, 1000, 20 * time.Second, ""}, // too early to say
		{250, 1000, time.Minute, ", about 3m0s left"},
		{500, 1000, 2 * time.Minute, ", about 2m0s left"},
		{1000, 1000, time.Minute, ""}, // the estimate is used up
		{10, 0, time.Minute, ""},      // no estimate
	} {
		if got := eta(c.done, c.estimate, c.elapsed); got != c.want {
			t.Errorf("eta(%d, %d, %s) = %q, want %q", c.done, c.estimate, c.elapsed, got, c.want)
		}
	}
}
