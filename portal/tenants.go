package portal

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/mailgate/mailgate/connector"
)

// tenantTaken reports whether tenant belongs to another customer than
// customer: bound to it, or, for a tenant not yet bound, used by another
// customer's live connection through the operator's app (made before
// tenants were bound).
func (s *Server) tenantTaken(ctx context.Context, tenant, customer string) (bool, error) {
	if connector.ValidTenantID(tenant) != nil {
		return true, nil // only a verified GUID can be bound
	}
	b, ok, err := s.deps.Tenants.TenantOwner(ctx, tenant)
	if err != nil {
		return false, fmt.Errorf("tenant owner: %w", err)
	}
	if ok {
		return b.Customer != customer, nil
	}
	all, err := s.deps.Connections.List(ctx)
	if err != nil {
		return false, fmt.Errorf("list connections: %w", err)
	}
	for _, c := range all {
		if c.Customer != customer && c.State != connector.StateDeleted && operatorApp(c) && strings.EqualFold(c.TenantID, tenant) {
			return true, nil
		}
	}
	return false, nil
}

// operatorApp reports whether c is app-only through the operator's app
// (not the customer's own app registration).
func operatorApp(c connector.Connection) bool {
	return c.Mode == connector.AppOnly && len(c.ClientSecret) == 0
}

// tenantRefused explains a refused tenant and logs the attempt.
func (s *Server) tenantRefused(w http.ResponseWriter, r *http.Request, u *sessionUser, key, why, tenant, got string) {
	s.log.WarnContext(r.Context(), "tenant refused", "reason", why, "user", u.Name, "customer", u.Customer,
		"tenant", tenant, "callback_tenant", got)
	s.metrics.connects.WithLabelValues("tenant_refused").Inc()
	s.message(w, r, http.StatusForbidden, messageData{
		Title: key + "_title", Paragraphs: []string{s.tr(r, key)},
		Links: []link{{Href: "/connect", Label: "connect.again"}},
	})
}
