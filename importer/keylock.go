package importer

import (
	"context"
	"sync"
)

// keyLocks serialises work on one key, such as a customer's content hash,
// between goroutines of this process. Keys nobody holds or waits for take
// no memory.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch    chan struct{} // holds a token while locked
	users int           // holders and waiters, under keyLocks.mu
}

// lock waits until key is free or ctx ends; on success the caller must
// call unlock once.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[key]
	if k == nil {
		k = &keyLock{ch: make(chan struct{}, 1)}
		l.m[key] = k
	}
	k.users++
	l.mu.Unlock()
	select {
	case k.ch <- struct{}{}:
	case <-ctx.Done():
		l.leave(key, k)
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-k.ch
			l.leave(key, k)
		})
	}, nil
}

func (l *keyLocks) leave(key string, k *keyLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.users--; k.users == 0 {
		delete(l.m, key)
	}
}
