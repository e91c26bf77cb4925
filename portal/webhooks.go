package portal

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/mailgate/mailgate/archive/webhook"
)

// Webhooks registers a customer's webhook endpoints and keeps their
// delivery logs (*webhook.Service).
type Webhooks interface {
	Create(ctx context.Context, customer string, r webhook.Registration, actor string) (webhook.Endpoint, string, error)
	List(ctx context.Context, customer string) ([]webhook.Endpoint, error)
	Get(ctx context.Context, customer, id string) (webhook.Endpoint, error)
	Delete(ctx context.Context, customer, id string) (webhook.Endpoint, error)
	Deliveries(ctx context.Context, customer, id string) ([]webhook.Delivery, error)
	Redeliver(ctx context.Context, customer, id, eventID string) (webhook.Delivery, error)
	Enable(ctx context.Context, customer, id string) (webhook.Endpoint, error)
}

// webhookError turns the webhook package's kinds into the portal's.
func webhookError(err error) error {
	var inv *webhook.InvalidError
	switch {
	case errors.Is(err, webhook.ErrNotFound):
		return errNotFound
	case errors.As(err, &inv):
		return invalid(inv.Msg)
	}
	return err
}

// webhooks wraps an API handler that needs the webhook service; without
// one the routes do not exist.
func (s *Server) webhooks(h func(http.ResponseWriter, *http.Request, APIKey, Webhooks)) http.HandlerFunc {
	return s.api(func(w http.ResponseWriter, r *http.Request, key APIKey) {
		if s.deps.Webhooks == nil {
			s.apiError(w, r, errNotFound)
			return
		}
		h(w, r, key, s.deps.Webhooks)
	})
}

type webhookResponse struct {
	Webhook webhook.Endpoint `json:"webhook"`
	Secret  string           `json:"secret,omitempty"` // only when created
}

func (s *Server) apiWebhookCreate(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	var req webhook.Registration
	dec := json.NewDecoder(io.LimitReader(r.Body, 8192))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.URL == "" {
		s.apiError(w, r, invalid(`body must be {"url":"https://…","types":[…],"subjectFilter":"…"}`))
		return
	}
	ep, secret, err := wh.Create(r.Context(), key.Customer, req, "api:"+key.ID)
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.log.InfoContext(r.Context(), "api: webhook registered", "endpoint_id", ep.ID, "key_id", key.ID)
	s.apiJSON(w, r, http.StatusCreated, webhookResponse{Webhook: ep, Secret: secret})
}

func (s *Server) apiWebhookList(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	eps, err := wh.List(r.Context(), key.Customer)
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.apiJSON(w, r, http.StatusOK, map[string]any{"webhooks": eps})
}

func (s *Server) apiWebhookGet(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	ep, err := wh.Get(r.Context(), key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.apiJSON(w, r, http.StatusOK, webhookResponse{Webhook: ep})
}

func (s *Server) apiWebhookDelete(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	ep, err := wh.Delete(r.Context(), key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.log.InfoContext(r.Context(), "api: webhook deleted", "endpoint_id", ep.ID, "key_id", key.ID)
	s.apiJSON(w, r, http.StatusOK, webhookResponse{Webhook: ep})
}

func (s *Server) apiWebhookDeliveries(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	ds, err := wh.Deliveries(r.Context(), key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.apiJSON(w, r, http.StatusOK, map[string]any{"deliveries": ds})
}

func (s *Server) apiWebhookRedeliver(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	d, err := wh.Redeliver(r.Context(), key.Customer, r.PathValue("id"), r.PathValue("event"))
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.apiJSON(w, r, http.StatusOK, map[string]any{"delivery": d})
}

func (s *Server) apiWebhookEnable(w http.ResponseWriter, r *http.Request, key APIKey, wh Webhooks) {
	ep, err := wh.Enable(r.Context(), key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, webhookError(err))
		return
	}
	s.log.InfoContext(r.Context(), "api: webhook enabled", "endpoint_id", ep.ID, "key_id", key.ID)
	s.apiJSON(w, r, http.StatusOK, webhookResponse{Webhook: ep})
}
