// Package kvrec keeps typed records in NATS JetStream key-value buckets
// and changes them with compare-and-set: read a record and its revision,
// edit a fresh copy, write it only if nobody wrote in between, and read
// again after a conflict, a bounded number of times with jittered waits.
// It is the one place that knows what a conflict looks like: a single
// server and a replicated (R3) bucket answer it differently.
package kvrec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrContended is the kind of an Update that met a conflict on every one
// of its attempts: others keep writing the record. Retrying later may
// succeed; it is no fault of the record's content.
var ErrContended = errors.New("compare-and-set contended")

// ErrUnchanged, returned by an edit, ends an Update without a write; Update
// then returns the record as the edit left it, the revision read and no
// error.
var ErrUnchanged = errors.New("record unchanged")

// Conflict reports whether a Create, an Update or a Delete with a last
// revision failed because the key was not at the revision expected (for a
// Create: because the key exists). A single server answers error 10071,
// which nats.go maps to ErrKeyExists for Create and ErrKeyRevisionMismatch
// for Update; a replicated bucket answers 10164, which matches
// ErrKeyRevisionMismatch only, and a Delete or a Create over a deleted key
// returns either code unmapped.
func Conflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// Policy bounds the attempts of a compare-and-set. The zero Policy is
// DefaultPolicy.
type Policy struct {
	// Attempts is how many writes are tried in all (at least 1).
	Attempts int
	// Wait is the longest wait before the second attempt; each later one
	// may wait twice as long as the one before, up to MaxWait. Every wait
	// is drawn at random from [0, its bound) (full jitter), so writers
	// that collided do not collide again in step.
	Wait, MaxWait time.Duration
}

// DefaultPolicy is the policy of every record unless it names another: 20
// attempts, waits from 2 ms up to 100 ms, in all at most about a second.
var DefaultPolicy = Policy{Attempts: 20, Wait: 2 * time.Millisecond, MaxWait: 100 * time.Millisecond}

func (p Policy) orDefault() Policy {
	if p.Attempts <= 0 {
		return DefaultPolicy
	}
	return p
}

// wait sleeps before attempt n (n >= 1, the first retry) or returns
// ctx's error when ctx ends first.
func (p Policy) wait(ctx context.Context, n int) error {
	bound := p.Wait
	for i := 1; i < n && bound < p.MaxWait; i++ {
		bound *= 2
	}
	bound = min(bound, max(p.MaxWait, p.Wait))
	if bound <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(rand.N(bound))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Retry runs try until it returns anything but a conflict, at most
// p.Attempts times, waiting between attempts as p says. It returns try's
// last error; after a conflict on the last attempt that error also
// matches ErrContended. It is for compare-and-set writes that are not one
// record's read-edit-write (Update is), such as a Create followed by an
// Update of another key.
func (p Policy) Retry(ctx context.Context, try func() error) error {
	p = p.orDefault()
	for n := 0; ; n++ {
		if n > 0 {
			if err := p.wait(ctx, n); err != nil {
				return err
			}
		}
		err := try()
		if !Conflict(err) {
			return err
		}
		if n+1 >= p.Attempts {
			return &contendedError{attempts: p.Attempts, err: err}
		}
	}
}

// contendedError is a conflict on every attempt: it matches ErrContended
// and, through the last conflict, the nats.go errors that say so.
type contendedError struct {
	attempts int
	err      error
}

func (e *contendedError) Error() string {
	return fmt.Sprintf("%s: %d attempts: %v", ErrContended, e.attempts, e.err)
}

func (e *contendedError) Unwrap() []error { return []error{ErrContended, e.err} }

// Codec turns a record into the bytes of a KV entry and back.
type Codec[T any] struct {
	Encode func(T) ([]byte, error)
	Decode func([]byte) (T, error)
}

// JSON is the codec of records stored as JSON.
func JSON[T any]() Codec[T] {
	return Codec[T]{
		Encode: func(v T) ([]byte, error) { return json.Marshal(v) },
		Decode: func(b []byte) (T, error) {
			var v T
			err := json.Unmarshal(b, &v)
			return v, err
		},
	}
}

// Text is the codec of records that are a plain string.
func Text() Codec[string] {
	return Codec[string]{
		Encode: func(s string) ([]byte, error) { return []byte(s), nil },
		Decode: func(b []byte) (string, error) { return string(b), nil },
	}
}

// Record is how records of type T are kept in one bucket.
type Record[T any] struct {
	KV    jetstream.KeyValue
	Codec Codec[T]
	// Create lets Update make a missing key: its edit then starts from
	// T's zero value at revision 0. Without it a missing key fails Update
	// with jetstream.ErrKeyNotFound.
	Create bool
	Policy Policy
}

// Get returns the record at key and its revision. A missing key is
// jetstream.ErrKeyNotFound (a deleted key too), unwrapped so that callers
// see it as nats.go returns it; other errors name the key.
func (r Record[T]) Get(ctx context.Context, key string) (T, uint64, error) {
	var zero T
	e, err := r.KV.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return zero, 0, err
		}
		return zero, 0, fmt.Errorf("get %s: %w", key, err)
	}
	v, err := r.Codec.Decode(e.Value())
	if err != nil {
		return zero, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return v, e.Revision(), nil
}

// Update reads the record at key, lets edit change it and writes it back
// if the key is still at the revision read; after a conflict it reads
// again and calls edit again, as r.Policy allows. So edit may run more
// than once: it must start from the value it is given and have no effect
// beyond it. edit gets the revision read (0: the key is missing and
// r.Create allows making it). An error from edit ends Update and is
// returned as is, except ErrUnchanged, which writes nothing.
// Update returns the record written and its new revision. After
// r.Policy's attempts the error matches ErrContended.
func (r Record[T]) Update(ctx context.Context, key string, edit func(v *T, rev uint64) error) (T, uint64, error) {
	var out T
	var outRev uint64
	err := r.Policy.Retry(ctx, func() error {
		v, rev, err := r.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound) && r.Create:
			var zero T
			v, rev = zero, 0
		case err != nil:
			return err
		}
		if err := edit(&v, rev); errors.Is(err, ErrUnchanged) {
			out, outRev = v, rev
			return nil
		} else if err != nil {
			return err
		}
		b, err := r.Codec.Encode(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		var nrev uint64
		if rev == 0 {
			nrev, err = r.KV.Create(ctx, key, b)
		} else {
			nrev, err = r.KV.Update(ctx, key, b, rev)
		}
		if err != nil {
			if Conflict(err) {
				return err // Retry reads again
			}
			return fmt.Errorf("write %s: %w", key, err)
		}
		out, outRev = v, nrev
		return nil
	})
	if err != nil {
		var zero T
		if Conflict(err) {
			err = fmt.Errorf("update %s: %w", key, err)
		}
		return zero, 0, err
	}
	return out, outRev, nil
}
