package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/mailgate/mailgate/archive"
)

// startingStore is the document store of a process whose S3 did not answer
// at start. Until it does, every use fails as storage (the importer's
// infrastructure fault, /readyz 503), the way S3 lost later does; connect
// keeps trying in the background and swaps the real store in.
type startingStore struct {
	bucket string

	mu    sync.Mutex
	store archive.Store
	err   error // the last attempt's
}

func (s *startingStore) current() (archive.Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		return s.store, nil
	}
	return nil, fmt.Errorf("not reachable since start: %w", s.err)
}

func (s *startingStore) Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta archive.Meta) (archive.ObjectRef, error) {
	st, err := s.current()
	if err != nil {
		return archive.ObjectRef{}, err
	}
	return st.Put(ctx, key, body, size, sha256hex, meta)
}

func (s *startingStore) Get(ctx context.Context, key string) (io.ReadCloser, archive.Info, error) {
	st, err := s.current()
	if err != nil {
		return nil, archive.Info{}, err
	}
	return st.Get(ctx, key)
}

func (s *startingStore) Stat(ctx context.Context, key string) (archive.Info, error) {
	st, err := s.current()
	if err != nil {
		return archive.Info{}, err
	}
	return st.Stat(ctx, key)
}

func (s *startingStore) Ping(ctx context.Context) error {
	st, err := s.current()
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

func (s *startingStore) Bucket() string { return s.bucket }

// connect opens the store with open until it succeeds or ctx ends,
// waiting from 1 s doubling to 30 s between attempts.
func (s *startingStore) connect(ctx context.Context, open func(context.Context) (archive.Store, error), what string, log *slog.Logger) {
	wait := time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := open(actx)
		cancel()
		if err == nil {
			s.mu.Lock()
			s.store, s.err = st, nil
			s.mu.Unlock()
			log.Info("storage: "+what+" is reachable, ready", "store", what)
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		wait = min(2*wait, 30*time.Second)
		log.Warn("storage: "+what+" still not reachable, retrying", "retry_in", wait.String(), "err", err)
	}
}
