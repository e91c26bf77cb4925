package importer

import (
	"context"
	"time"
)

// backoff computes jittered exponential delays: attempt n waits between
// half and all of base·2^(n-1), capped at max.
type backoff struct {
	base, max time.Duration
	rand      func() float64 // [0,1)
}

func (b backoff) delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := b.base
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	return d/2 + time.Duration(b.rand()*float64(d/2))
}

// sleep waits d on the injected clock or until ctx is done.
func sleep(ctx context.Context, after func(time.Duration) <-chan time.Time, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-after(d):
		return nil
	}
}
