package archive

import (
	"context"
	"time"
)

// TypeWebhookDisabled announces that a webhook endpoint was disabled after
// its deliveries failed for too long.
const TypeWebhookDisabled = "mailgate.webhook.disabled"

// WebhookDisabled is the data of a webhook.disabled event.
type WebhookDisabled struct {
	Customer     string    `json:"customer"`
	Endpoint     string    `json:"endpoint"`
	URL          string    `json:"url"`
	FailingSince time.Time `json:"failingSince"`
	Error        string    `json:"error,omitempty"` // the last attempt's
}

// WebhookDisabled publishes a webhook.disabled event under a new unique id;
// its source is mailgate/<customer>/<endpoint>.
func (p *Publisher) WebhookDisabled(ctx context.Context, d WebhookDisabled) error {
	id, err := NewEventID(p.now())
	if err != nil {
		return err
	}
	return p.publish(ctx, id, TypeWebhookDisabled, d.Customer, d.Endpoint, &d)
}
