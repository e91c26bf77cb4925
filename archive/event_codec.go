package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SpecVersion is the CloudEvents version of every event.
const SpecVersion = "1.0"

// envelope is Event with the data still raw, for Decode.
type envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            *time.Time      `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Decode parses a CloudEvents 1.0 event in structured JSON mode. It is strict
// about the envelope: specversion must be "1.0", id, source and type must be
// set, the type must be one of TypeImported, TypeSkipped or
// TypeConnectionChanged, datacontenttype must be empty or application/json,
// and data must be an object of the matching kind with its customer set.
// Unknown fields inside data are ignored, so subscribers keep working when
// mailgate adds fields.
func Decode(data []byte) (Event, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return Event{}, fmt.Errorf("archive: decode event: %w", err)
	}
	if env.SpecVersion != SpecVersion {
		return Event{}, fmt.Errorf("archive: decode event: specversion %q, want %q", env.SpecVersion, SpecVersion)
	}
	if env.ID == "" || env.Source == "" {
		return Event{}, errors.New("archive: decode event: missing id or source")
	}
	if env.DataContentType != "" && env.DataContentType != "application/json" {
		return Event{}, fmt.Errorf("archive: decode event %s: datacontenttype %q", env.ID, env.DataContentType)
	}
	raw := bytes.TrimSpace(env.Data)
	if len(raw) == 0 || raw[0] != '{' {
		return Event{}, fmt.Errorf("archive: decode event %s: data is not an object", env.ID)
	}
	ev := Event{SpecVersion: env.SpecVersion, ID: env.ID, Source: env.Source, Type: env.Type, DataContentType: env.DataContentType}
	if env.Time != nil {
		ev.Time = *env.Time
	}
	var customer string
	switch env.Type {
	case TypeImported:
		d := new(Imported)
		if err := json.Unmarshal(raw, d); err != nil {
			return Event{}, fmt.Errorf("archive: decode event %s: %w", env.ID, err)
		}
		ev.Data, customer = d, d.Customer
	case TypeSkipped:
		d := new(Skipped)
		if err := json.Unmarshal(raw, d); err != nil {
			return Event{}, fmt.Errorf("archive: decode event %s: %w", env.ID, err)
		}
		ev.Data, customer = d, d.Customer
	case TypeConnectionChanged:
		d := new(ConnectionChanged)
		if err := json.Unmarshal(raw, d); err != nil {
			return Event{}, fmt.Errorf("archive: decode event %s: %w", env.ID, err)
		}
		ev.Data, customer = d, d.Customer
	case TypeWebhookDisabled:
		d := new(WebhookDisabled)
		if err := json.Unmarshal(raw, d); err != nil {
			return Event{}, fmt.Errorf("archive: decode event %s: %w", env.ID, err)
		}
		ev.Data, customer = d, d.Customer
	default:
		return Event{}, fmt.Errorf("archive: decode event %s: unknown type %q", env.ID, env.Type)
	}
	if customer == "" {
		return Event{}, fmt.Errorf("archive: decode event %s: %w", env.ID, errNoCustomer)
	}
	return ev, nil
}
