package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/internal/kvrec"
)

// lease is this replica's hold on one connection. The KV entry expires
// LeaseTTL after its last write, so a dead replica's connections are taken
// over; a live one renews every TTL/3.
type lease struct {
	kv  jetstream.KeyValue
	key string
	rev uint64
}

// acquire takes the lease with Create; ErrLeased when another replica holds
// it. A lease under this replica's own name was left by a previous run of
// this replica that died (a replica name is one process at a time), so it
// is taken back at once instead of after its TTL.
func (im *Importer) acquire(ctx context.Context, connID string) (*lease, error) {
	key := kvToken(connID)
	rev, err := im.ledger.leases.Create(ctx, key, []byte(im.cfg.Replica))
	if kvrec.Conflict(err) {
		e, gerr := im.ledger.leases.Get(ctx, key)
		if gerr != nil || string(e.Value()) != im.cfg.Replica {
			return nil, ErrLeased
		}
		rev, err = im.ledger.leases.Update(ctx, key, []byte(im.cfg.Replica), e.Revision())
		if kvrec.Conflict(err) {
			return nil, ErrLeased
		}
	}
	if err != nil {
		return nil, fmt.Errorf("importer: lease %s: %w", connID, err)
	}
	return &lease{kv: im.ledger.leases, key: key, rev: rev}, nil
}

// hold renews the lease until ctx ends or renewing fails; then it calls lost
// (when the lease was lost) and returns. The caller waits for it.
func (im *Importer) hold(ctx context.Context, l *lease, lost func()) {
	t := time.NewTicker(im.cfg.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rev, err := l.kv.Update(ctx, l.key, []byte(im.cfg.Replica), l.rev)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				im.log.Warn("importer: lease lost", "connection_id", l.key, "err", err)
				lost()
				return
			}
			l.rev = rev
		}
	}
}

// release deletes the lease if it is still ours.
func (l *lease) release(ctx context.Context) error {
	if err := l.kv.Delete(ctx, l.key, jetstream.LastRevision(l.rev)); err != nil {
		return fmt.Errorf("importer: release lease %s: %w", l.key, err)
	}
	return nil
}

// withLease runs fn holding the connection's lease. fn's context ends when
// ctx ends or the lease is lost; fn is expected to finish the document in
// flight and return.
func (im *Importer) withLease(ctx context.Context, connID string, fn func(ctx context.Context) error) error {
	// Within this process the lease is guarded here, so that acquire may take
	// back a lease under this replica's name only from a previous run.
	im.mu.Lock()
	if im.held[connID] {
		im.mu.Unlock()
		return ErrLeased
	}
	im.held[connID] = true
	im.mu.Unlock()
	defer func() {
		im.mu.Lock()
		delete(im.held, connID)
		im.mu.Unlock()
	}()
	l, err := im.acquire(ctx, connID)
	if err != nil {
		return err
	}
	workCtx, cancel := context.WithCancelCause(ctx)
	holdCtx, stopHold := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() {
		im.hold(holdCtx, l, func() { cancel(errLeaseLost) })
	})
	err = fn(workCtx)
	stopHold()
	wg.Wait()
	cancel(nil)
	relCtx, relCancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer relCancel()
	if rerr := l.release(relCtx); rerr != nil {
		im.log.Warn("importer: release lease", "connection_id", connID, "err", rerr)
	}
	return err
}

var errLeaseLost = errors.New("importer: lease lost")
