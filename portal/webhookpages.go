package portal

import (
	"net/http"

	"github.com/mailgate/mailgate/archive/webhook"
)

// webhookPageDeliveries bounds the log shown per endpoint.
const webhookPageDeliveries = 20

type webhookEntry struct {
	Endpoint   webhook.Endpoint
	Deliveries []webhook.Delivery
}

type webhooksData struct {
	Endpoints []webhookEntry
}

// listWebhooks shows the customer's webhook endpoints and their latest
// deliveries, with a button to send one again.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	if s.deps.Webhooks == nil {
		s.fail(w, r, errNotFound)
		return
	}
	eps, err := s.deps.Webhooks.List(r.Context(), u.Customer)
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	var data webhooksData
	for _, ep := range eps {
		ds, err := s.deps.Webhooks.Deliveries(r.Context(), u.Customer, ep.ID)
		if err != nil {
			s.fail(w, r, webhookError(err))
			return
		}
		ds = ds[:min(len(ds), webhookPageDeliveries)]
		data.Endpoints = append(data.Endpoints, webhookEntry{Endpoint: ep, Deliveries: ds})
	}
	s.render(w, r, http.StatusOK, "webhooks", "webhooks.title", data)
}

// redeliverWebhook sends a logged event again and goes back to the list.
func (s *Server) redeliverWebhook(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	if s.deps.Webhooks == nil {
		s.fail(w, r, errNotFound)
		return
	}
	d, err := s.deps.Webhooks.Redeliver(r.Context(), u.Customer, r.PathValue("id"), r.PostFormValue("event"))
	if err != nil {
		s.fail(w, r, webhookError(err))
		return
	}
	s.log.InfoContext(r.Context(), "portal: webhook redelivered", "endpoint_id", r.PathValue("id"), "event_id", d.EventID, "status", d.Status, "actor", u.actor())
	http.Redirect(w, r, "/webhooks", http.StatusSeeOther)
}
