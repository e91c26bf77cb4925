package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestNotReady(t *testing.T) {
	api := func(code jetstream.ErrorCode) error {
		return fmt.Errorf("connector: store: bucket connections: %w", &jetstream.APIError{Code: 400, ErrorCode: code})
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("wire: %w", context.DeadlineExceeded), true},
		{api(10005), true}, // no suitable peers: a cluster still forming
		{api(10008), true},
		{api(10009), true},
		{api(jetstream.JSErrCodeJetStreamNotEnabled), true},
		{api(jetstream.JSErrCodeStreamNameInUse), false}, // a real conflict: retrying won't help
		{errors.New("archive: s3: access denied"), false},
	} {
		if got := notReady(tc.err); got != tc.want {
			t.Errorf("notReady(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
