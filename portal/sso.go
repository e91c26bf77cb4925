package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mailgate/mailgate/connector"
)

// ssoProvider signs users in with OpenID Connect.
type ssoProvider struct {
	cfg      OIDCConfig
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	client   *http.Client // for the groups lookup
}

func newSSOProvider(ctx context.Context, cfg OIDCConfig, redirectURL string) (*ssoProvider, error) {
	if cfg.IssuerURL == "" || cfg.ClientID == "" || cfg.Customer == "" {
		return nil, errors.New("sso: issuer url, client id and customer are required")
	}
	p, err := oidc.NewProvider(ctx, cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("sso: discover %s: %w", cfg.IssuerURL, err)
	}
	return &ssoProvider{
		cfg: cfg,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: redirectURL,
			Scopes: []string{oidc.ScopeOpenID, "profile", "email", "User.Read"},
		},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		client:   &http.Client{Timeout: 15 * time.Second},
	}, nil
}

type ssoState struct {
	Req  ssoRequest `json:"req"`
	Next string     `json:"next"`
}

type ssoRequest struct {
	State, Nonce, Verifier string
}

func (s *Server) ssoStart(w http.ResponseWriter, r *http.Request) {
	if s.sso == nil {
		s.fail(w, r, errNotFound)
		return
	}
	req := connector.NewAuthRequest()
	st := ssoState{Req: ssoRequest{State: req.State, Nonce: req.Nonce, Verifier: req.Verifier}, Next: safeNext(r.URL.Query().Get("next"))}
	b, _ := json.Marshal(st)
	s.sessions.Put(r.Context(), "sso", string(b))
	u := s.sso.oauth.AuthCodeURL(req.State, oidc.Nonce(req.Nonce), oauth2.S256ChallengeOption(req.Verifier))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// ssoCallback completes the sign-in: state checked in constant time and used
// once, nonce checked, groups taken from the token or, on overage, looked up.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if s.sso == nil {
		s.fail(w, r, errNotFound)
		return
	}
	var st ssoState
	raw := s.sessions.PopString(ctx, "sso")
	q := r.URL.Query()
	if raw == "" || json.Unmarshal([]byte(raw), &st) != nil || !constantEqual(q.Get("state"), st.Req.State) {
		s.message(w, r, http.StatusBadRequest, messageData{Title: "callback.stale_title", Paragraphs: []string{s.tr(r, "callback.stale")},
			Links: []link{{Href: "/login", Label: "login.title"}}})
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(ctx, "sso refused", "err", e)
		s.message(w, r, http.StatusOK, messageData{Title: "consent.failed_title", Paragraphs: []string{s.tr(r, "sso.failed")},
			Links: []link{{Href: "/login", Label: "login.title"}}})
		return
	}
	u, err := s.sso.user(ctx, q.Get("code"), st.Req)
	if err != nil {
		s.log.WarnContext(ctx, "sso failed", "err", err)
		s.message(w, r, http.StatusUnauthorized, messageData{Title: "consent.failed_title", Paragraphs: []string{s.tr(r, "sso.failed")},
			Links: []link{{Href: "/login", Label: "login.title"}}})
		return
	}
	if err := s.startSession(r, u); err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.log.InfoContext(ctx, "sso login", "user", u.Name, "groups", len(u.Groups))
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

type ssoClaims struct {
	Name       string   `json:"preferred_username"`
	Email      string   `json:"email"`
	Nonce      string   `json:"nonce"`
	Groups     []string `json:"groups"`
	ClaimNames struct {
		Groups string `json:"groups"`
	} `json:"_claim_names"`
}

func (p *ssoProvider) user(ctx context.Context, code string, req ssoRequest) (sessionUser, error) {
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return sessionUser{}, fmt.Errorf("sso: exchange: %w", err)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return sessionUser{}, errors.New("sso: no id_token")
	}
	idt, err := p.verifier.Verify(ctx, rawID)
	if err != nil {
		return sessionUser{}, fmt.Errorf("sso: verify: %w", err)
	}
	var c ssoClaims
	if err := idt.Claims(&c); err != nil {
		return sessionUser{}, fmt.Errorf("sso: claims: %w", err)
	}
	if !constantEqual(c.Nonce, req.Nonce) {
		return sessionUser{}, errors.New("sso: nonce mismatch")
	}
	name := c.Name
	if name == "" {
		name = c.Email
	}
	if name == "" {
		name = idt.Subject
	}
	groups := c.Groups
	if c.ClaimNames.Groups != "" {
		// Overage: more groups than fit the token. Never read that as "no
		// groups"; ask Graph.
		if groups, err = p.memberGroups(ctx, tok); err != nil {
			return sessionUser{}, err
		}
	}
	return sessionUser{Name: name, Customer: p.cfg.Customer, Groups: groups, Via: "sso", Until: idt.Expiry}, nil
}

// memberGroups asks Graph's getMemberGroups for all of the user's groups.
func (p *ssoProvider) memberGroups(ctx context.Context, tok *oauth2.Token) ([]string, error) {
	if p.cfg.GroupsURL == "" {
		return nil, errors.New("sso: groups overage but no groups url configured")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.GroupsURL, bytes.NewReader([]byte(`{"securityEnabledOnly":false}`)))
	if err != nil {
		return nil, fmt.Errorf("sso: groups: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sso: groups: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("sso: groups: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sso: groups: status %d: %s", resp.StatusCode, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	var out struct {
		Value []string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("sso: groups: %w", err)
	}
	return out.Value, nil
}
