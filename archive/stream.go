package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamName is the JetStream stream that carries all archive events.
const StreamName = "MAILGATE"

// subjectPrefix starts every subject of the stream.
const subjectPrefix = "mailgate."

// Duplicate window bounds: the window must outlast any replay of a sync pass.
const (
	MinDuplicateWindow     = 2 * time.Hour
	DefaultDuplicateWindow = 24 * time.Hour
)

// StreamConfig tunes the MAILGATE stream.
type StreamConfig struct {
	Replicas        int           // 0 = 1
	DuplicateWindow time.Duration // 0 = 24h; at least 2h
	MaxAge          time.Duration // 0 = keep for ever
}

// EnsureStream creates the stream MAILGATE (subjects mailgate.>, file
// storage) or updates it to cfg. It is safe to call on every start.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	if cfg.DuplicateWindow == 0 {
		cfg.DuplicateWindow = DefaultDuplicateWindow
	}
	if cfg.DuplicateWindow < MinDuplicateWindow {
		return nil, fmt.Errorf("archive: ensure stream: duplicate window %v is below %v", cfg.DuplicateWindow, MinDuplicateWindow)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("archive: ensure stream: negative max age %v", cfg.MaxAge)
	}
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "mailgate archive events",
		Subjects:    []string{subjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("archive: ensure stream %s: %w", StreamName, err)
	}
	return s, nil
}

// Subject returns the subject of an event type for a customer:
// Subject("acme", TypeImported) is "mailgate.acme.document.imported". The
// type may also be given without its "mailgate." prefix. Check the customer
// with ValidCustomer first; an invalid one would make a subject that no
// subscriber's filter matches as intended.
func Subject(customer, eventType string) string {
	return subjectPrefix + customer + "." + strings.TrimPrefix(eventType, subjectPrefix)
}

// ValidCustomer reports whether customer can be a single subject token: not
// empty, at most 64 bytes, no dots, wildcards, whitespace or control characters.
func ValidCustomer(customer string) error {
	if customer == "" || len(customer) > 64 {
		return fmt.Errorf("archive: invalid customer %q", customer)
	}
	for _, r := range customer {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\' {
			return fmt.Errorf("archive: invalid customer %q", customer)
		}
	}
	return nil
}

// typeSuffix maps an event type to its subject suffix, or "" when unknown.
func typeSuffix(eventType string) string {
	switch eventType {
	case TypeImported, TypeSkipped, TypeConnectionChanged, TypeWebhookDisabled:
		return strings.TrimPrefix(eventType, subjectPrefix)
	case "document.imported", "document.skipped", "connection.changed", "webhook.disabled":
		return eventType
	}
	return ""
}

var errNoCustomer = errors.New("missing customer")
