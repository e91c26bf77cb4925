package connector

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of IdentityConfig.
const (
	DefaultTenant   = "organizations"
	DefaultLoginURL = "https://login.microsoftonline.com"
	DefaultGraphURL = "https://graph.microsoft.com/v1.0"
)

// DelegatedScopes are requested in the authorization code flow.
var DelegatedScopes = []string{"openid", "profile", "email", "offline_access", "User.Read", "Mail.ReadWrite.Shared"}

// IdentityConfig is mailgate's app registration with the Microsoft identity
// platform.
type IdentityConfig struct {
	ClientID, ClientSecret string
	Tenant                 string // default "organizations"
	LoginURL               string // default https://login.microsoftonline.com
	GraphURL               string // default https://graph.microsoft.com/v1.0; the ".default" resource is its scheme://host
	RedirectURL            string // PUBLIC_URL + "/connect/callback"
	HTTPClient             *http.Client
}

// Identity talks to the Microsoft identity platform: the authorization code
// flow with PKCE for delegated connections, admin consent and client
// credentials for app-only ones, and token refresh.
type Identity struct {
	cfg      IdentityConfig
	oauth    oauth2.Config
	resource string // scheme://host of GraphURL

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // discovered on first use
}

// NewIdentity checks cfg and fills in defaults. It does no network I/O; the
// OpenID configuration is discovered on the first Exchange.
func NewIdentity(cfg IdentityConfig) (*Identity, error) {
	if cfg.ClientID == "" {
		return nil, errors.New("connector: identity: client id is empty")
	}
	if cfg.Tenant == "" {
		cfg.Tenant = DefaultTenant
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = DefaultLoginURL
	}
	if cfg.GraphURL == "" {
		cfg.GraphURL = DefaultGraphURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	cfg.LoginURL = strings.TrimSuffix(cfg.LoginURL, "/")
	if _, err := url.Parse(cfg.LoginURL); err != nil {
		return nil, fmt.Errorf("connector: identity: login url: %w", err)
	}
	g, err := url.Parse(cfg.GraphURL)
	if err != nil || g.Scheme == "" || g.Host == "" {
		return nil, fmt.Errorf("connector: identity: graph url %q is not an absolute URL", cfg.GraphURL)
	}
	i := &Identity{cfg: cfg, resource: g.Scheme + "://" + g.Host}
	i.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     i.endpoint(cfg.Tenant),
		RedirectURL:  cfg.RedirectURL,
		Scopes:       DelegatedScopes,
	}
	return i, nil
}

func (i *Identity) endpoint(tenant string) oauth2.Endpoint {
	base := i.cfg.LoginURL + "/" + url.PathEscape(tenant) + "/oauth2/v2.0"
	// AuthStyleInParams: Microsoft takes client_secret in the body; without
	// it oauth2 would probe the header style first and send two requests.
	return oauth2.Endpoint{AuthURL: base + "/authorize", TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInParams}
}

// DefaultScope is the client credentials scope for Graph: "<graph>/.default".
func (i *Identity) DefaultScope() string { return i.resource + "/.default" }

func (i *Identity) client(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, i.cfg.HTTPClient)
}

// NewAuthRequest returns fresh random state, nonce and PKCE verifier.
func NewAuthRequest() AuthRequest {
	return AuthRequest{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier()}
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// AuthCodeURL is where the browser goes to sign in and consent: the
// delegated scopes, PKCE (S256) and the nonce. A loginHint names the account
// to sign in with (login_hint); without one, prompt=select_account lets a
// person signed in with several accounts pick the mailbox's one. Never both:
// Microsoft's documentation says to send one or the other.
func (i *Identity) AuthCodeURL(req AuthRequest, loginHint string) string {
	return i.oauth.AuthCodeURL(req.State, signInOptions(req, loginHint)...)
}

// signInOptions are PKCE, the nonce and either login_hint or
// prompt=select_account, never both.
func signInOptions(req AuthRequest, loginHint string) []oauth2.AuthCodeOption {
	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(req.Verifier),
		oidc.Nonce(req.Nonce),
	}
	if loginHint != "" {
		return append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
}

// AdminConsentURL is where a tenant's admin grants mailgate's app its
// application permissions. tenant may be a tenant id, a domain or
// "organizations"; redirectURL defaults to the configured one.
func (i *Identity) AdminConsentURL(tenant, state, redirectURL string) string {
	if tenant == "" {
		tenant = i.cfg.Tenant
	}
	if redirectURL == "" {
		redirectURL = i.cfg.RedirectURL
	}
	q := url.Values{
		"client_id":    {i.cfg.ClientID},
		"redirect_uri": {redirectURL},
		"state":        {state},
		"scope":        {i.DefaultScope()},
	}
	return i.cfg.LoginURL + "/" + url.PathEscape(tenant) + "/v2.0/adminconsent?" + q.Encode()
}

// idClaims are the id_token claims mailgate reads.
type idClaims struct {
	TenantID string   `json:"tid"`
	ObjectID string   `json:"oid"`
	Username string   `json:"preferred_username"`
	Name     string   `json:"name"`
	Groups   []string `json:"groups"`
	Roles    []string `json:"wids"`
}

// multiTenant are the tenant aliases whose id_tokens carry the account's own
// tenant in iss.
var multiTenant = map[string]bool{"organizations": true, "common": true, "consumers": true}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Exchange redeems an authorization code with the PKCE verifier of req and
// verifies the id_token: signature (JWKS from discovery), audience, expiry,
// the issuer of the account's tenant and the nonce of req.
func (i *Identity) Exchange(ctx context.Context, code string, req AuthRequest) (Consent, error) {
	return i.exchange(ctx, "connector: identity: exchange code", i.oauth, code, req)
}

// SignInScopes are requested when a tenant's administrator signs in to
// prove the tenant: the id_token only, no mailbox access.
var SignInScopes = []string{"openid", "profile", "email"}

// SignInURL is where a tenant's administrator signs in (OpenID Connect
// authorization code flow with PKCE and nonce) at the tenant's own
// endpoint, so that the id_token names the tenant. tenant may be a tenant
// id or a verified domain of the tenant.
func (i *Identity) SignInURL(tenant string, req AuthRequest, loginHint string) string {
	c := i.signInConfig(tenant)
	return c.AuthCodeURL(req.State, signInOptions(req, loginHint)...)
}

// VerifySignIn redeems the code of a SignInURL sign-in and verifies its
// id_token like Exchange does (signature by the identity platform's keys,
// audience, expiry, issuer of the token's own tenant, nonce). The
// returned Consent's TenantID is the verified tid claim; it has no
// refresh token worth keeping.
func (i *Identity) VerifySignIn(ctx context.Context, tenant, code string, req AuthRequest) (Consent, error) {
	c, err := i.exchange(ctx, "connector: identity: verify sign-in", i.signInConfig(tenant), code, req)
	c.RefreshToken, c.Token = "", nil
	return c, err
}

func (i *Identity) signInConfig(tenant string) oauth2.Config {
	if tenant == "" {
		tenant = i.cfg.Tenant
	}
	c := i.oauth
	c.Endpoint = i.endpoint(tenant)
	c.Scopes = SignInScopes
	return c
}

func (i *Identity) exchange(ctx context.Context, op string, oc oauth2.Config, code string, req AuthRequest) (Consent, error) {
	tok, err := oc.Exchange(i.client(ctx), code, oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return Consent{}, classifyToken(op, true, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Consent{}, &Error{Op: op, Kind: Other, Err: errors.New("token response has no id_token")}
	}
	v, err := i.idVerifier(ctx)
	if err != nil {
		return Consent{}, &Error{Op: op, Kind: Transient, Err: err}
	}
	idt, err := v.Verify(ctx, raw)
	if err != nil {
		return Consent{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("verify id_token: %w", err)}
	}
	var cl idClaims
	if err := idt.Claims(&cl); err != nil {
		return Consent{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("id_token claims: %w", err)}
	}
	if cl.TenantID == "" || idt.Issuer != i.cfg.LoginURL+"/"+cl.TenantID+"/v2.0" {
		return Consent{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("id_token issuer %q does not match its tenant %q", idt.Issuer, cl.TenantID)}
	}
	if !multiTenant[strings.ToLower(i.cfg.Tenant)] && guidRE.MatchString(i.cfg.Tenant) && !strings.EqualFold(cl.TenantID, i.cfg.Tenant) {
		return Consent{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("id_token tenant %q is not the configured tenant", cl.TenantID)}
	}
	if req.Nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(req.Nonce)) != 1 {
		return Consent{}, &Error{Op: op, Kind: Invalid, Err: errors.New("id_token nonce does not match")}
	}
	return Consent{
		TenantID:       cl.TenantID,
		ObjectID:       cl.ObjectID,
		Username:       cl.Username,
		Name:           cl.Name,
		Groups:         cl.Groups,
		DirectoryRoles: cl.Roles,
		RefreshToken:   tok.RefreshToken,
		Token:          tok,
	}, nil
}

// idVerifier discovers the OpenID configuration of the configured tenant
// once. For "organizations" the discovery document names the issuer
// "{LoginURL}/{tenantid}/v2.0" with a placeholder, so go-oidc's issuer checks
// are off and Exchange checks iss against the token's own tid instead.
func (i *Identity) idVerifier(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.verifier != nil {
		return i.verifier, nil
	}
	issuer := i.cfg.LoginURL + "/" + url.PathEscape(i.cfg.Tenant) + "/v2.0"
	dctx := oidc.InsecureIssuerURLContext(oidc.ClientContext(ctx, i.cfg.HTTPClient), issuer)
	p, err := oidc.NewProvider(dctx, issuer)
	if err != nil {
		return nil, fmt.Errorf("openid discovery: %w", err)
	}
	i.verifier = p.Verifier(&oidc.Config{ClientID: i.cfg.ClientID, SkipIssuerCheck: true})
	return i.verifier, nil
}

// refresh redeems a delegated refresh token. Microsoft answers with a new
// (rotated) refresh token, returned in the token.
func (i *Identity) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	tok, err := i.oauth.TokenSource(i.client(ctx), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, ClassifyTokenError("connector: identity: refresh token", err)
	}
	return tok, nil
}

// AppTokenSource returns client credentials tokens for Graph (scope
// "<graph>/.default") of an app registration in tenant. Its errors are
// classified like ClassifyTokenError's. ctx carries the HTTP client only;
// the source may be used after ctx ends.
func (i *Identity) AppTokenSource(ctx context.Context, tenant, clientID, clientSecret string) oauth2.TokenSource {
	cc := clientcredentials.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		TokenURL:     i.endpoint(tenant).TokenURL,
		Scopes:       []string{i.DefaultScope()},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	return classifyingSource{src: cc.TokenSource(i.client(context.WithoutCancel(ctx)))}
}

type classifyingSource struct{ src oauth2.TokenSource }

func (s classifyingSource) Token() (*oauth2.Token, error) {
	tok, err := s.src.Token()
	if err != nil {
		return nil, ClassifyTokenError("connector: identity: client credentials", err)
	}
	return tok, nil
}

// refusals are the OAuth error codes of a token endpoint answer that only
// a person can resolve, whatever AADSTS code Microsoft puts on them:
// Microsoft's error reference tells clients not to depend on AADSTS
// numbers, which it adds and changes. invalid_grant counts on a refresh or
// client credentials request, not on a code exchange (see classifyToken):
// there the person is still at the browser and the portal explains it.
var refusals = map[string]string{
	"invalid_grant":        "the sign-in behind this connection is no longer valid (revoked, expired or ended by a policy of the organisation)",
	"interaction_required": "Microsoft requires the person to sign in again (for example multi-factor authentication or a Conditional Access policy)",
	"consent_required":     "consent for mailgate is missing",
	"invalid_client":       "the app's credentials were refused (the client secret is wrong or expired)",
	"unauthorized_client":  "the app is not allowed to sign in (disabled, removed or not consented in the tenant)",
}

// knownCodes give a more precise explanation for documented AADSTS codes.
// They never decide the classification; an unknown code gets the general
// sentence of its OAuth error from refusals.
var knownCodes = map[string]string{
	"AADSTS50173":   "the grant was revoked (password change or sign-out everywhere)",
	"AADSTS70008":   "the refresh token expired",
	"AADSTS700082":  "the refresh token expired after 90 days of inactivity",
	"AADSTS700084":  "the refresh token expired",
	"AADSTS70043":   "the sign-in expired under a Conditional Access sign-in frequency policy",
	"AADSTS50076":   "multi-factor authentication is required",
	"AADSTS50079":   "multi-factor authentication registration is required",
	"AADSTS50158":   "a Conditional Access policy requires interaction",
	"AADSTS53003":   "a Conditional Access policy blocked access",
	"AADSTS65001":   "consent is missing",
	"AADSTS7000222": "the client secret expired",
	"AADSTS7000215": "the client secret is invalid",
	"AADSTS7000112": "the application is disabled",
	"AADSTS700016":  "the application is not found in the tenant",
}

// consentOnExchange are codes that need a person even on a code exchange
// (where invalid_grant alone does not).
var consentOnExchange = map[string]bool{"AADSTS65001": true, "AADSTS50076": true, "AADSTS50158": true, "AADSTS53003": true}

var aadstsRE = regexp.MustCompile(`AADSTS\d+`)

// Explain returns a plain-language reason for a classified token error, for
// Connection.LastError and the portal. It never includes token values. A
// refusal with a documented AADSTS code gets that code's reason; any other
// refusal a general sentence for its OAuth error.
func Explain(err error) string {
	e := classified(err)
	if e == nil {
		if err == nil {
			return ""
		}
		return err.Error()
	}
	if e.Kind != NeedsConsent {
		return e.Error()
	}
	why, ok := knownCodes[e.Code]
	if !ok {
		why, ok = refusals[e.oauthError]
	}
	if !ok {
		why = "a person must sign in again"
	}
	code := e.Code
	if code == "" {
		code = e.oauthError
	}
	if code != "" {
		why += " (" + code + ")"
	}
	return "Microsoft refused the sign-in: " + why + ". Please connect the mailbox again."
}

// ClassifyTokenError turns an error from a token endpoint into an *Error.
// An answer only a person can resolve is NeedsConsent: the OAuth errors
// invalid_grant (the refresh token is revoked, expired or ended by a
// policy), interaction_required, consent_required, invalid_client (a wrong
// or expired secret) and unauthorized_client, whatever their AADSTS code. 429 is Throttled with Retry-After; 5xx and network errors are
// Transient; anything else is Other. Code is Microsoft's AADSTS code (from
// error_codes, else the description), or the OAuth error when there is
// none. The result never carries the response body, only Microsoft's error,
// code and the first line of its description.
func ClassifyTokenError(op string, err error) error { return classifyToken(op, false, err) }

// classifyToken is ClassifyTokenError; exchange says the request redeemed
// an authorization code. There invalid_grant is a code that is spent,
// expired or has the wrong verifier, for the portal to explain to the
// person at the browser; elsewhere it means the grant is gone, and
// Microsoft's advice for it is a new request to the authorize endpoint,
// which needs a person. On an exchange only the codes of consentOnExchange
// are NeedsConsent among invalid_grant answers.
func classifyToken(op string, exchange bool, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &Error{Op: op, Kind: Other, Err: err}
		}
		var ne net.Error
		var ue *url.Error
		if errors.As(err, &ne) || errors.As(err, &ue) {
			return &Error{Op: op, Kind: Transient, Err: err}
		}
		return &Error{Op: op, Kind: Other, Err: err}
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	desc := re.ErrorDescription
	if n := strings.IndexAny(desc, "\r\n"); n >= 0 {
		desc = desc[:n] // the first line says it; trace and correlation ids follow
	}
	body := parseAADBody(re.Body)
	oauthErr := re.ErrorCode
	if oauthErr == "" {
		oauthErr = body.Error
	}
	detail := fmt.Sprintf("token endpoint: status %d: %s", status, oauthErr)
	if body.Suberror != "" {
		detail += " (" + body.Suberror + ")"
	}
	out := &Error{Op: op, Kind: Other, Code: body.code(), oauthError: oauthErr, Err: errors.New(detail + ": " + desc)}
	if out.Code == "" {
		out.Code = aadstsRE.FindString(re.ErrorDescription)
	}
	if out.Code == "" {
		out.Code = aadstsRE.FindString(string(re.Body))
	}
	_, refused := refusals[oauthErr]
	switch {
	case status == http.StatusTooManyRequests:
		out.Kind = Throttled
		out.RetryAfter = retryAfter(re.Response)
	case status >= 500 || status == http.StatusRequestTimeout:
		out.Kind = Transient
		out.RetryAfter = retryAfter(re.Response)
	case refused && (oauthErr != "invalid_grant" || !exchange):
		out.Kind = NeedsConsent
	case consentOnExchange[out.Code]:
		out.Kind = NeedsConsent
	case status == 0 && oauthErr == "":
		out.Kind = Transient
	}
	if out.Code == "" {
		out.Code = oauthErr
	}
	return out
}

// aadBody is the part of the identity platform's error JSON that
// oauth2.RetrieveError does not parse.
type aadBody struct {
	Error      string `json:"error"`
	ErrorCodes []int  `json:"error_codes"`
	Suberror   string `json:"suberror"`
}

func parseAADBody(b []byte) aadBody {
	var a aadBody
	_ = json.Unmarshal(b, &a) // a body that is not JSON has none of these
	return a
}

func (a aadBody) code() string {
	if len(a.ErrorCodes) == 0 || a.ErrorCodes[0] <= 0 {
		return ""
	}
	return "AADSTS" + strconv.Itoa(a.ErrorCodes[0])
}

func retryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
