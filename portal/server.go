package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

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

// sessionUser is who is logged in, kept in the session as JSON.
type sessionUser struct {
	Name     string   `json:"name"`
	Customer string   `json:"customer"`
	Groups   []string `json:"groups"`
	Via      string   `json:"via"` // "password" or "sso"
	// Until ends an SSO session when its id_token expires: the groups
	// came from the token, and a fresh sign-in brings the current ones.
	Until time.Time `json:"until,omitzero"`
}

// actor names the user in UpdatedBy and audit events.
func (u *sessionUser) actor() string { return "portal:" + u.Name }

// currentUser is the session's user as the directory knows them now: a
// built-in user is looked up on every request, so removing the user, or a
// group of theirs, takes effect on their next request; an SSO session ends
// when its id_token expires. A user who is gone is logged out.
func (s *Server) currentUser(ctx context.Context) *sessionUser {
	raw := s.sessions.GetString(ctx, "user")
	if raw == "" {
		return nil
	}
	var u sessionUser
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		return nil
	}
	switch u.Via {
	case "sso":
		if !u.Until.IsZero() && !s.now().Before(u.Until) {
			s.sessions.Remove(ctx, "user")
			return nil
		}
	default:
		su, err := s.users.get(ctx, u.Name)
		if err != nil {
			if errors.Is(err, errNotFound) {
				s.log.InfoContext(ctx, "session of a removed user ended", "user", u.Name)
				s.sessions.Remove(ctx, "user")
			} else {
				s.log.ErrorContext(ctx, "look up session user", "user", u.Name, "err", err)
			}
			return nil // fail closed
		}
		if su.Customer != u.Customer {
			s.sessions.Remove(ctx, "user")
			return nil
		}
		u.Groups = su.Groups
	}
	return &u
}

// member wraps a handler that needs a logged-in member of the connect group.
func (s *Server) member(h func(http.ResponseWriter, *http.Request, *sessionUser)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.currentUser(r.Context())
		if u == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !slices.Contains(u.Groups, s.cfg.ConnectGroup) {
			w.Header().Set("Cache-Control", "no-store")
			s.render(w, r, http.StatusForbidden, "forbidden", "forbidden.title", s.cfg.ConnectGroup)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(r); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, u)
	}
}

// csrfToken returns the session's form token, creating it on first use.
func (s *Server) csrfToken(ctx context.Context) string {
	t := s.sessions.GetString(ctx, "csrf")
	if t == "" {
		t = randomToken()
		s.sessions.Put(ctx, "csrf", t)
	}
	return t
}

// checkCSRF compares the form's token with the session's in constant time.
func (s *Server) checkCSRF(r *http.Request) error {
	want := s.sessions.GetString(r.Context(), "csrf")
	got := r.PostFormValue("csrf")
	if want == "" || !constantEqual(got, want) {
		return errBadCSRF
	}
	return nil
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

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err)
			// One line per problem, as the operator must fix them.
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n" + err.Error() + "\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

// clientIP is the address of the client behind r: the peer, or, when the
// peer is a trusted proxy, the nearest untrusted address the proxies
// recorded in X-Forwarded-For.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for _, hop := range slices.Backward(hops) {
		hop = strings.TrimSpace(hop)
		if _, err := netip.ParseAddr(hop); err != nil {
			break // a proxy wrote nonsense: stop at the last address we can tell
		}
		host = hop
		if !s.trusted(hop) {
			break
		}
	}
	return host
}

func (s *Server) trusted(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func randomToken() string { return oauth2.GenerateVerifier() }

// defaultNext is where a refused or missing next goes.
const defaultNext = "/connections"

// safeNext keeps redirects after login on this site. next is accepted only
// as a path a browser resolves on this host, judged both as written and as
// a browser reads it (the WHATWG URL parser removes tabs and newlines,
// trims leading controls and spaces, and takes a backslash for a slash):
// a path-absolute reference that url.Parse reads with no scheme, host or
// user, with no control character or backslash, raw or percent-encoded in
// the path, whose path does not start with "//" and has no dot segment
// (which would collapse to "//"). Everything else goes to /connections.
func safeNext(next string) string {
	if !localPath(next) {
		return defaultNext
	}
	return next
}

func localPath(next string) bool {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return false
	}
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// u.Path is decoded: %2f, %5c, %09 and the like count as what they
	// encode.
	p := u.Path
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
