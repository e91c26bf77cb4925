package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/connector"
)

// Config configures the portal. cmd/mailgate fills it from its own
// configuration.
type Config struct {
	// PublicURL is where browsers reach the portal; https makes cookies
	// Secure. The OAuth redirect URI is PublicURL + "/connect/callback".
	PublicURL string
	// ConnectGroup is the group whose members may connect mailboxes;
	// default "mailbox-connect".
	ConnectGroup string
	// OIDC enables single sign-on; nil means the built-in directory only.
	OIDC *OIDCConfig
	// DemoRedeem lets the code page redeem the code as the DMS would, so a
	// newcomer can finish the demo without a DMS. Never in production.
	DemoRedeem bool
	// DemoMailbox pre-fills the connect wizard's mailbox (the demo's
	// simulated invoice mailbox); empty outside the demo.
	DemoMailbox string
	// TimeZone is where the viewers of German pages are: their times are
	// shown in it. nil: Europe/Berlin. English pages show UTC.
	TimeZone *time.Location
	// IdentityOrigin is the identity platform's origin (scheme://host of
	// MAILGATE_LOGIN_URL), where the connect wizard's form redirects: the
	// only place besides the portal that the CSP's form-action allows.
	// Empty: https://login.microsoftonline.com.
	IdentityOrigin string
	// TrustedProxies are the reverse proxies in front of the portal. A
	// request from one of them is attributed, for rate limits and logs, to
	// the last address in X-Forwarded-For that is not a trusted proxy;
	// from anywhere else X-Forwarded-For is ignored, since a client can
	// send it.
	TrustedProxies []netip.Prefix

	Logger *slog.Logger
	// Registerer takes the portal's metrics; nil: not registered. The
	// portal never serves /metrics: they name customers and connections,
	// so cmd/mailgate serves them on a listener of their own.
	Registerer prometheus.Registerer
	// Ready reports whether the process can serve (/readyz); nil: always.
	Ready func(ctx context.Context) error
	Now   func() time.Time // nil: time.Now
}

// OIDCConfig is an OpenID Connect provider for single sign-on.
type OIDCConfig struct {
	IssuerURL    string
	ClientID     string
	ClientSecret string
	// Customer is the customer all SSO users belong to.
	Customer string
	// GroupsURL is Graph's /me/getMemberGroups, asked with the access token
	// when the id token carries the groups overage marker instead of groups.
	GroupsURL string
}

// Server is the portal and the DMS API.
type Server struct {
	deps     Deps
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	users    *Users
	keys     *APIKeys
	sessions *scs.SessionManager
	views    *views
	sso      *ssoProvider
	metrics  *metrics
	secure   bool

	loginPair  *backoff        // failed logins per account and client
	loginIP    *failureLimiter // failed logins per client
	apiIP      *failureLimiter // failed API authentication
	activation *Activation
	handler    http.Handler
}

// New builds the portal. It opens the KV buckets "users", "apikeys" and
// "sessions", parses every view, and (with OIDC) discovers the provider.
func New(ctx context.Context, js jetstream.JetStream, deps Deps, cfg Config) (*Server, error) {
	if deps.Identity == nil || deps.Connections == nil || deps.Tenants == nil || deps.Codes == nil || deps.Sealer == nil || deps.Tester == nil {
		return nil, errors.New("portal: Identity, Connections, Tenants, Codes, Sealer and Tester are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("portal: public url %q must be an absolute http(s) URL", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.ConnectGroup == "" {
		cfg.ConnectGroup = "mailbox-connect"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TimeZone == nil {
		loc, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			return nil, fmt.Errorf("portal: time zone: %w", err)
		}
		cfg.TimeZone = loc
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		deps: deps, cfg: cfg, log: cfg.Logger, now: cfg.Now, secure: u.Scheme == "https",
		loginPair: newBackoff(3, time.Second, 5*time.Minute),
		loginIP:   newFailureLimiter(6*time.Second, 20),
		apiIP:     newFailureLimiter(6*time.Second, 20),
	}
	if s.users, err = NewUsers(ctx, js); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	if s.keys, err = NewAPIKeys(ctx, js); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	store, err := newKVSessionStore(ctx, js, s.now)
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	if s.views, err = parseViews(); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	if cfg.OIDC != nil {
		if s.sso, err = newSSOProvider(ctx, *cfg.OIDC, cfg.PublicURL+"/login/sso/callback"); err != nil {
			return nil, fmt.Errorf("portal: %w", err)
		}
	}
	if s.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	s.activation = newActivation(deps, s.log, s.now, s.metrics)

	sm := scs.New()
	sm.Store = store
	sm.Lifetime = 12 * time.Hour
	sm.IdleTimeout = 2 * time.Hour
	sm.Cookie.Name = "mailgate_session"
	sm.Cookie.HttpOnly = true
	// Lax, not Strict: the return from Microsoft is a cross-site top-level
	// GET that must carry the session with the wizard's state.
	sm.Cookie.SameSite = http.SameSiteLaxMode
	sm.Cookie.Secure = s.secure
	sm.Cookie.Path = "/"
	sm.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) {
		s.log.ErrorContext(r.Context(), "session", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
	}
	s.sessions = sm
	s.handler = s.routes()
	return s, nil
}

// Handler returns the portal's HTTP handler, protected against cross-origin
// form posts.
func (s *Server) Handler() http.Handler { return s.handler }

// Activation returns where connections are tested and activated, for
// the control service of the CLI.
func (s *Server) Activation() *Activation { return s.activation }

// Users returns the user directory (for tests and the CLI's wiring).
func (s *Server) Users() *Users { return s.users }

// APIKeys returns the API key store.
func (s *Server) APIKeys() *APIKeys { return s.keys }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /static/", staticHandler())

	// Browser routes carry the session.
	web := http.NewServeMux()
	web.HandleFunc("GET /lang", s.setLang)
	web.HandleFunc("GET /login", s.loginForm)
	web.HandleFunc("POST /login", s.login)
	web.HandleFunc("POST /logout", s.logout)
	web.HandleFunc("GET /login/sso", s.ssoStart)
	web.HandleFunc("GET /login/sso/callback", s.ssoCallback)
	web.HandleFunc("GET /{$}", s.member(s.home))
	web.HandleFunc("GET /connections", s.member(s.listConnections))
	web.HandleFunc("GET /connections/{id}", s.member(s.showConnection))
	web.HandleFunc("GET /connections/{id}/code", s.member(s.showCode))
	web.HandleFunc("GET /connections/{id}/documents/{doc}", s.member(s.download))
	web.HandleFunc("POST /connections/{id}/code", s.member(s.reissueCode))
	web.HandleFunc("POST /connections/{id}/pause", s.member(s.pause))
	web.HandleFunc("POST /connections/{id}/resume", s.member(s.resume))
	web.HandleFunc("POST /connections/{id}/retry", s.member(s.retryParked))
	web.HandleFunc("GET /connections/{id}/disconnect", s.member(s.confirmDisconnect))
	web.HandleFunc("POST /connections/{id}/disconnect", s.member(s.disconnect))
	web.HandleFunc("POST /connections/{id}/reconnect", s.member(s.reconnect))
	web.HandleFunc("GET /connections/{id}/secret", s.member(s.secretForm))
	web.HandleFunc("POST /connections/{id}/secret", s.member(s.setSecret))
	web.HandleFunc("GET /connect", s.member(s.connectForm))
	web.HandleFunc("POST /connect", s.member(s.connectStart))
	web.HandleFunc("GET /connect/callback", s.member(s.connectCallback))
	web.HandleFunc("GET /webhooks", s.member(s.listWebhooks))
	web.HandleFunc("POST /webhooks/{id}/redeliver", s.member(s.redeliverWebhook))
	if s.cfg.DemoRedeem {
		web.HandleFunc("POST /demo/redeem", s.member(s.demoRedeem))
	}
	mux.Handle("/", s.sessions.LoadAndSave(s.boundedForms(web)))

	// The API authenticates with bearer keys, never with the session.
	mux.HandleFunc("POST /api/v1/connections/redeem", s.api(s.apiRedeem))
	mux.HandleFunc("GET /api/v1/connections", s.api(s.apiList))
	mux.HandleFunc("GET /api/v1/connections/{id}", s.api(s.apiGet))
	mux.HandleFunc("POST /api/v1/connections/{id}/test", s.api(s.apiTest))
	mux.HandleFunc("DELETE /api/v1/connections/{id}", s.api(s.apiDelete))
	mux.HandleFunc("GET /api/v1/events", s.api(s.apiEvents))
	mux.HandleFunc("GET /api/v1/openapi.json", s.openAPIDoc)
	mux.HandleFunc("POST /api/v1/webhooks", s.webhooks(s.apiWebhookCreate))
	mux.HandleFunc("GET /api/v1/webhooks", s.webhooks(s.apiWebhookList))
	mux.HandleFunc("GET /api/v1/webhooks/{id}", s.webhooks(s.apiWebhookGet))
	mux.HandleFunc("DELETE /api/v1/webhooks/{id}", s.webhooks(s.apiWebhookDelete))
	mux.HandleFunc("POST /api/v1/webhooks/{id}/enable", s.webhooks(s.apiWebhookEnable))
	mux.HandleFunc("GET /api/v1/webhooks/{id}/deliveries", s.webhooks(s.apiWebhookDeliveries))
	mux.HandleFunc("POST /api/v1/webhooks/{id}/deliveries/{event}/redeliver", s.webhooks(s.apiWebhookRedeliver))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		if allow := apiAllow(r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
			s.apiError(w, r, errMethodNotAllowed)
			return
		}
		s.apiError(w, r, errNotFound)
	})

	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.log.WarnContext(r.Context(), "cross-origin request refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	return securityHeaders(cop.Handler(mux), s.cfg.IdentityOrigin)
}

// securityHeaders sets the headers every answer carries. form-action
// allows the portal and the identity platform only: the wizard's POST
// redirects there, and browsers check a form's redirects too.
func securityHeaders(next http.Handler, identityOrigin string) http.Handler {
	if identityOrigin == "" {
		identityOrigin = "https://login.microsoftonline.com"
	}
	if u, err := url.Parse(identityOrigin); err == nil && u.Scheme != "" && u.Host != "" {
		identityOrigin = u.Scheme + "://" + u.Host
	}
	csp := "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self' " + identityOrigin
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", csp)
		next.ServeHTTP(w, r)
	})
}

// fail renders an error page; internal details only go to the log.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := errorInfo(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	retryAfterHeader(w, err)
	key := "error." + code
	if code == "invalid" {
		key = msg
	}
	s.render(w, r, status, "error", "error.title", key)
}

// ownConnection loads a connection of the customer; anything else is
// errNotFound, so other customers' connections are not revealed.
func (s *Server) ownConnection(ctx context.Context, customer, id string) (connector.Connection, error) {
	c, err := s.deps.Connections.Get(ctx, id)
	if err != nil {
		if connector.IsKind(err, connector.NotFound) {
			return c, errNotFound
		}
		return c, fmt.Errorf("get connection %s: %w", id, err)
	}
	if c.Customer != customer || c.State == connector.StateDeleted {
		return connector.Connection{}, errNotFound
	}
	return c, nil
}

func (s *Server) ownConnections(ctx context.Context, customer string) ([]connector.Connection, error) {
	all, err := s.deps.Connections.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	var out []connector.Connection
	for _, c := range all {
		if c.Customer == customer && c.State != connector.StateDeleted {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Server) redirectURI() string { return s.cfg.PublicURL + "/connect/callback" }
