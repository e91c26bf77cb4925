package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// apiConnection is a connection as the DMS sees it: never any secret.
type apiConnection struct {
	ID              string                `json:"id"`
	Customer        string                `json:"customer"`
	TenantID        string                `json:"tenantId"`
	Mailbox         string                `json:"mailbox"`
	Folder          string                `json:"folder"`
	Mode            connector.Mode        `json:"mode"`
	State           connector.State       `json:"state"`
	LastError       string                `json:"lastError,omitempty"`
	PostProcess     connector.PostProcess `json:"postProcess"`
	Backfill        connector.Backfill    `json:"backfill"`
	ConsentedBy     string                `json:"consentedBy,omitempty"`
	ClientID        string                `json:"clientId,omitempty"`
	SecretExpiresAt *time.Time            `json:"secretExpiresAt,omitempty"`
	CreatedBy       string                `json:"createdBy"`
	CreatedAt       time.Time             `json:"createdAt"`
	UpdatedAt       time.Time             `json:"updatedAt"`
}

func toAPI(c connector.Connection) apiConnection {
	a := apiConnection{
		ID: c.ID, Customer: c.Customer, TenantID: c.TenantID, Mailbox: c.Mailbox, Folder: c.Folder, Mode: c.Mode,
		State: c.State, LastError: c.LastError, PostProcess: c.PostProcess, Backfill: c.Backfill,
		ConsentedBy: c.ConsentedBy, ClientID: c.ClientID, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}
	if !c.SecretExpiresAt.IsZero() {
		t := c.SecretExpiresAt
		a.SecretExpiresAt = &t
	}
	return a
}

// api wraps a handler that needs a valid bearer API key. Failed
// authentication is rate limited per client IP.
func (s *Server) api(h func(http.ResponseWriter, *http.Request, APIKey)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := boundedAPI(w, r); err != nil {
			s.apiError(w, r, err)
			return
		}
		ip, now := s.clientIP(r), s.now()
		wait, release := s.apiIP.Take(ip, now)
		if wait > 0 {
			s.apiError(w, r, &rateLimitedError{retryAfter: wait})
			return
		}
		secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			release()
			w.Header().Set("WWW-Authenticate", `Bearer realm="mailgate"`)
			s.apiError(w, r, errUnauthorized)
			return
		}
		key, err := s.keys.Verify(r.Context(), strings.TrimSpace(secret))
		if err != nil {
			if errors.Is(err, errBadKey) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="mailgate", error="invalid_token"`)
			} else {
				release()
			}
			s.apiError(w, r, err)
			return
		}
		release()
		h(w, r, key)
	}
}

func (s *Server) apiJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.WarnContext(r.Context(), "api: write response", "err", err)
	}
	s.metrics.apiRequests.WithLabelValues(fmt.Sprint(status)).Inc()
}

type apiErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// apiError answers with {"error":{"code","message"}} from errorInfo.
func (s *Server) apiError(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := errorInfo(err)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	retryAfterHeader(w, err)
	var body apiErrorBody
	body.Error.Code, body.Error.Message = code, msg
	s.apiJSON(w, r, status, body)
}

type redeemRequest struct {
	Code string `json:"code"`
}

type connectionResponse struct {
	Connection apiConnection `json:"connection"`
	Test       *TestResult   `json:"test,omitempty"`
}

// apiRedeem activates a pending connection with its one-time code. Invalid,
// expired, used and other customers' codes all get the same answer;
// repeated failures are limited per key and per IP.
func (s *Server) apiRedeem(w http.ResponseWriter, r *http.Request, key APIKey) {
	ctx := r.Context()
	ip := s.clientIP(r)
	var req redeemRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || strings.TrimSpace(req.Code) == "" {
		s.apiError(w, r, invalid(`body must be {"code":"…"}`))
		return
	}
	c, res, err := s.activation.RedeemLimited(ctx, key.Customer, req.Code, "api:"+key.ID, "key:"+key.ID, "ip:"+ip)
	if err != nil {
		if isInvalidCode(err) {
			s.log.InfoContext(ctx, "invalid code", "key_id", key.ID, "ip", ip)
		}
		s.apiError(w, r, err)
		return
	}
	s.apiJSON(w, r, http.StatusOK, connectionResponse{Connection: toAPI(c), Test: &res})
}

func (s *Server) apiList(w http.ResponseWriter, r *http.Request, key APIKey) {
	cs, err := s.ownConnections(r.Context(), key.Customer)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	out := make([]apiConnection, 0, len(cs))
	for _, c := range cs {
		out = append(out, toAPI(c))
	}
	s.apiJSON(w, r, http.StatusOK, map[string]any{"connections": out})
}

func (s *Server) apiGet(w http.ResponseWriter, r *http.Request, key APIKey) {
	c, err := s.ownConnection(r.Context(), key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.apiJSON(w, r, http.StatusOK, connectionResponse{Connection: toAPI(c)})
}

// apiTest runs the connection test and reports it; a failing connection
// that passes becomes active again.
func (s *Server) apiTest(w http.ResponseWriter, r *http.Request, key APIKey) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	c, res, err := s.activation.Retest(ctx, c.ID, "api:"+key.ID)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	s.apiJSON(w, r, http.StatusOK, connectionResponse{Connection: toAPI(c), Test: &res})
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request, key APIKey) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, key.Customer, r.PathValue("id"))
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	c, err = s.deps.Connections.Delete(ctx, c.ID, "api:"+key.ID)
	if err != nil {
		s.apiError(w, r, fmt.Errorf("delete %s: %w", r.PathValue("id"), err))
		return
	}
	s.log.InfoContext(ctx, "api: connection deleted", "connection_id", c.ID, "key_id", key.ID)
	s.apiJSON(w, r, http.StatusOK, connectionResponse{Connection: toAPI(c)})
}
