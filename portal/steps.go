package portal

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/connector"
)

// signedIn finishes a person's delegated sign-in (steps connect and
// reconnect): the code is exchanged for tokens, and the connection made,
// or renewed, and tested.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values) {
	ctx := r.Context()
	if wz.Step == stepConnect && wz.Form.Mode == "admin" {
		// Admin mode without the administrator's sign-in (a wizard from
		// before the sign-in step): never trust the callback's tenant.
		s.staleCallback(w, r)
		return
	}
	consent, err := s.deps.Identity.Exchange(ctx, q.Get("code"), wz.Req)
	if err != nil {
		s.log.WarnContext(ctx, "token exchange failed", "user", u.Name, "err", err)
		if connector.IsKind(err, connector.Transient) || connector.IsKind(err, connector.Throttled) {
			s.fail(w, r, fmt.Errorf("exchange code: %w", err))
			return
		}
		// Refused by Microsoft (consent missing, code expired, policy):
		// explain, with the AADSTS code when there is one.
		var code string
		var ce *connector.Error
		if errors.As(err, &ce) {
			code = ce.Code
		}
		s.consentError(w, r, wz, "invalid_grant", code)
		return
	}
	c := wz.Form.connection(u, s.now())
	if wz.Step == stepReconnect {
		c.ID = wz.ReconnectID
	}
	sealed, err := s.deps.Sealer.SealFor(c.Customer, c.ID, []byte(consent.RefreshToken))
	if err != nil {
		s.fail(w, r, fmt.Errorf("seal refresh token: %w", err))
		return
	}
	if wz.Step == stepReconnect {
		s.finishReconnect(w, r, u, wz.ReconnectID, func(c *connector.Connection) {
			c.RefreshToken, c.TenantID, c.ConsentedBy = sealed, consent.TenantID, consent.Username
			c.TokenRefreshedAt = s.now()
		}, consent)
		return
	}
	c.TenantID, c.ConsentedBy, c.RefreshToken, c.TokenRefreshedAt = consent.TenantID, consent.Username, sealed, s.now()
	s.createAndIssue(w, r, u, c, consent)
}

// adminReconsented finishes an administrator's renewed approval of an
// existing connection through the operator's app. The connection keeps
// its tenant, proven when it was made; the callback's tenant is only
// compared, never taken.
func (s *Server) adminReconsented(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values) {
	tenant := q.Get("tenant")
	if !strings.EqualFold(q.Get("admin_consent"), "true") || tenant == "" {
		s.consentError(w, r, wz, "access_denied", "")
		return
	}
	if !strings.EqualFold(tenant, wz.Form.Tenant) {
		s.tenantRefused(w, r, u, "tenant.proof", "admin consent for another tenant", wz.Form.Tenant, tenant)
		return
	}
	if taken, err := s.tenantTaken(r.Context(), wz.Form.Tenant, u.Customer); err != nil {
		s.fail(w, r, err)
		return
	} else if taken {
		s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Form.Tenant, "")
		return
	}
	s.finishReconnect(w, r, u, wz.ReconnectID, func(*connector.Connection) {})
}

// adminApproved follows an administrator's approval for the
// organisation: now the person's own delegated sign-in can succeed.
func (s *Server) adminApproved(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, _ url.Values) {
	next := wizard{Step: wz.resumeStep(), Form: wz.Form, Req: connector.NewAuthRequest(), ReconnectID: wz.ReconnectID}
	if err := s.advance(r.Context(), wz.Step, next); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, s.deps.Identity.AuthCodeURL(next.Req, loginHint(u)), http.StatusSeeOther)
}

// adminSignedIn verifies the administrator's sign-in (id_token signature,
// issuer, audience, nonce), checks that its tenant is the one asked for and
// is not another customer's, and sends the administrator on to approve
// mailgate for exactly that tenant.
func (s *Server) adminSignedIn(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values) {
	ctx := r.Context()
	code := q.Get("code")
	asked := tenantOf(wz.Form)
	signIn, err := s.deps.Identity.VerifySignIn(ctx, asked, code, wz.Req)
	if err != nil {
		s.log.WarnContext(ctx, "admin sign-in failed", "user", u.Name, "err", err)
		if connector.IsKind(err, connector.Transient) || connector.IsKind(err, connector.Throttled) {
			s.fail(w, r, fmt.Errorf("verify admin sign-in: %w", err))
			return
		}
		var aadsts string
		var ce *connector.Error
		if errors.As(err, &ce) && strings.HasPrefix(ce.Code, "AADSTS") {
			aadsts = ce.Code
		}
		s.message(w, r, http.StatusOK, messageData{
			Title: "consent.failed_title", Paragraphs: []string{s.tr(r, "consent.other")}, Code: aadsts,
			Links: []link{{Href: "/connect", Label: "connect.again"}},
		})
		return
	}
	if !signIn.CanGrantAdminConsent() {
		// Only a Global or Privileged Role Administrator can approve; a
		// member's sign-in proves membership, not ownership.
		s.tenantRefused(w, r, u, "tenant.not_admin", "signed-in account is not an administrator", signIn.TenantID, "")
		return
	}
	if connector.ValidTenantID(asked) == nil && !strings.EqualFold(asked, signIn.TenantID) {
		s.tenantRefused(w, r, u, "tenant.proof", "admin signed in to another tenant", asked, signIn.TenantID)
		return
	}
	if taken, err := s.tenantTaken(ctx, signIn.TenantID, u.Customer); err != nil {
		s.fail(w, r, err)
		return
	} else if taken {
		s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", signIn.TenantID, "")
		return
	}
	next := wizard{Step: stepAdminConsent, Form: wz.Form, Req: connector.NewAuthRequest(), Tenant: signIn.TenantID, Admin: signIn.Username}
	if err := s.advance(ctx, wz.Step, next); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, s.deps.Identity.AdminConsentURL(signIn.TenantID, next.Req.State, s.redirectURI()), http.StatusSeeOther)
}

// adminConsented finishes an admin connect: the approval must name the
// tenant of the administrator's verified sign-in; the tenant is then bound
// to the customer (compare-and-set) and the connection made for it.
func (s *Server) adminConsented(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values) {
	ctx := r.Context()
	if !strings.EqualFold(q.Get("admin_consent"), "true") {
		s.consentError(w, r, wz, "access_denied", "")
		return
	}
	if wz.Tenant == "" || !strings.EqualFold(q.Get("tenant"), wz.Tenant) {
		s.tenantRefused(w, r, u, "tenant.proof", "admin consent for another tenant than the sign-in's", wz.Tenant, q.Get("tenant"))
		return
	}
	if taken, err := s.tenantTaken(ctx, wz.Tenant, u.Customer); err != nil {
		s.fail(w, r, err)
		return
	} else if taken {
		s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Tenant, "")
		return
	}
	if _, err := s.deps.Tenants.BindTenant(ctx, wz.Tenant, u.Customer, u.actor()+" (admin "+wz.Admin+")"); err != nil {
		if errors.Is(err, connector.ErrTenantBound) {
			s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Tenant, "")
			return
		}
		s.fail(w, r, fmt.Errorf("bind tenant: %w", err))
		return
	}
	c := wz.Form.connection(u, s.now())
	c.TenantID = wz.Tenant
	c.ConsentedBy = wz.Admin
	s.createAndIssue(w, r, u, c)
}

// consentError explains a refused or failed sign-in in plain language and,
// where an administrator can help, offers the admin consent link.
func (s *Server) consentError(w http.ResponseWriter, r *http.Request, wz wizard, code, description string) {
	ctx := r.Context()
	s.metrics.connects.WithLabelValues("consent_error").Inc()
	aadsts := ""
	if i := strings.Index(description, "AADSTS"); i >= 0 {
		j := i + len("AADSTS")
		for j < len(description) && description[j] >= '0' && description[j] <= '9' {
			j++
		}
		aadsts = description[i:j]
	}
	m := messageData{Code: aadsts, Links: []link{{Href: "/connect", Label: "connect.again"}}}
	adminLink := func() {
		if wz.Form.Mode == "admin" {
			// Already the administrator's flow: starting again is the way.
			return
		}
		retry := wizard{Step: stepAdminRetry, Form: wz.Form, Req: connector.NewAuthRequest(), ReconnectID: wz.ReconnectID}
		if err := s.advance(ctx, wz.Step, retry); err != nil {
			s.log.ErrorContext(ctx, "offer admin consent", "err", err)
			return
		}
		m.AdminURL = s.deps.Identity.AdminConsentURL(tenantOf(wz.Form), retry.Req.State, s.redirectURI())
	}
	switch {
	case aadsts == "AADSTS65001" || aadsts == "AADSTS90094" || aadsts == "AADSTS90095":
		m.Title, m.Paragraphs = "consent.admin_title", []string{s.tr(r, "consent.admin_needed")}
		adminLink()
	case aadsts == "AADSTS65004" || code == "access_denied" && aadsts == "":
		m.Title, m.Paragraphs = "consent.cancel_title", []string{s.tr(r, "consent.cancelled")}
	case aadsts == "AADSTS50105":
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.not_assigned")}
	case aadsts == "AADSTS50076" || aadsts == "AADSTS50158" || aadsts == "AADSTS53003":
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.conditional")}
	default:
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.other")}
		if code == "invalid_grant" {
			adminLink()
		}
	}
	s.log.InfoContext(ctx, "consent refused", "err", code, "aadsts", aadsts)
	s.message(w, r, http.StatusOK, m)
}
