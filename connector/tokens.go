package connector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// earlyExpiry is how long before its expiry a cached access token is
// replaced, so a token handed out is good for at least this long.
const earlyExpiry = 2 * time.Minute

// unknownExpiry is how long a token without an expiry is cached.
const unknownExpiry = 5 * time.Minute

// errStaleToken aborts a token rotation that lost the race to another replica.
var errStaleToken = errors.New("refresh token changed meanwhile")

// Tokens hands out Graph access tokens for connections. Access tokens are
// cached in memory per connection; a miss refreshes one connection at a time
// (single flight per connection id, within this process) and stores a
// rotated refresh token with compare-and-set, so concurrent replicas never
// leave a connection with a stale refresh token.
type Tokens struct {
	id     *Identity
	store  *Store
	sealer *Sealer
	logger *slog.Logger
	now    func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[string]cachedToken
}

type cachedToken struct {
	access string
	expiry time.Time
}

// NewTokens returns Tokens for the connections in store. A nil logger
// discards.
func NewTokens(id *Identity, store *Store, sealer *Sealer, logger *slog.Logger) *Tokens {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Tokens{id: id, store: store, sealer: sealer, logger: logger, now: time.Now, cache: map[string]cachedToken{}}
}

// AccessToken returns a valid access token for a connection. A connection in
// needs_consent gets an *Error of Kind NeedsConsent at once, without asking
// Microsoft again; a token refresh that Microsoft refuses for a reason a
// person must fix moves the connection to needs_consent (once) and returns
// that *Error. Concurrent callers for one connection share one refresh (and
// the first caller's context).
func (t *Tokens) AccessToken(ctx context.Context, connectionID string) (string, error) {
	if tok, ok := t.cached(connectionID); ok {
		return tok, nil
	}
	v, err, _ := t.flight.Do(connectionID, func() (any, error) {
		if tok, ok := t.cached(connectionID); ok {
			return tok, nil // a flight that just ended filled the cache
		}
		return t.refresh(ctx, connectionID, false)
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

// Prime caches the access token that came with a code exchange for a
// connection, so the connection test right after connecting or
// reconnecting (and a redeem within the token's lifetime) uses it instead
// of redeeming the new refresh token at once. A token without an access
// token is ignored.
func (t *Tokens) Prime(connectionID string, tok *oauth2.Token) {
	if tok == nil || tok.AccessToken == "" {
		return
	}
	t.remember(connectionID, tok)
}

// TestToken returns an access token for a connection test of c as given,
// whose credentials may not be stored yet (a reconnect tests before it
// saves). A delegated connection gets the token cached for c.ID (see
// Prime) or AccessToken's. An app-only connection whose stored state is
// needs_consent, or whose tenant, client id or secret differ from the
// stored ones, gets a client credentials token for c's own credentials,
// neither cached nor changing the stored state, whatever Microsoft
// answers; any other gets AccessToken's. Only a person reconnecting tests a
// connection in needs_consent (the portal's Retest does not), so such a
// connection still sends no token request on its own.
func (t *Tokens) TestToken(ctx context.Context, c Connection) (string, error) {
	if c.Mode != AppOnly {
		return t.AccessToken(ctx, c.ID)
	}
	stored, err := t.store.Get(ctx, c.ID)
	if err == nil && stored.State != StateNeedsConsent && stored.TenantID == c.TenantID &&
		stored.ClientID == c.ClientID && bytes.Equal(stored.ClientSecret, c.ClientSecret) {
		return t.AccessToken(ctx, c.ID)
	}
	tok, err := t.appToken(ctx, c)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// Forget drops the cached access token of a connection, for example after a
// reconnect or delete.
func (t *Tokens) Forget(connectionID string) {
	t.mu.Lock()
	delete(t.cache, connectionID)
	t.mu.Unlock()
}

func (t *Tokens) cached(id string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.cache[id]
	if !ok || !t.now().Add(earlyExpiry).Before(c.expiry) {
		return "", false
	}
	return c.access, true
}

func (t *Tokens) remember(id string, tok *oauth2.Token) {
	exp := tok.Expiry
	if exp.IsZero() {
		exp = t.now().Add(unknownExpiry + earlyExpiry)
	}
	t.mu.Lock()
	t.cache[id] = cachedToken{access: tok.AccessToken, expiry: exp}
	t.mu.Unlock()
}

// RefreshIdle refreshes the delegated tokens of active and paused
// connections whose refresh token was last used longer than olderThan ago
// (or never), so they do not expire after 90 days of inactivity
// (AADSTS700082). It goes on past failures and returns them joined.
func (t *Tokens) RefreshIdle(ctx context.Context, olderThan time.Duration) (int, error) {
	conns, err := t.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("connector: refresh idle tokens: %w", err)
	}
	cutoff := t.now().Add(-olderThan)
	var errs []error
	refreshed := 0
	for _, c := range conns {
		if c.Mode != Delegated || (c.State != StateActive && c.State != StatePaused) {
			continue
		}
		last := c.TokenRefreshedAt
		if last.IsZero() {
			last = c.CreatedAt
		}
		if last.After(cutoff) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return refreshed, fmt.Errorf("connector: refresh idle tokens: %w", err)
		}
		_, err, _ := t.flight.Do(c.ID, func() (any, error) { return t.refresh(ctx, c.ID, true) })
		if err != nil {
			errs = append(errs, err)
			continue
		}
		refreshed++
	}
	return refreshed, errors.Join(errs...)
}

// refresh gets a new access token for a connection from Microsoft. force
// means the caller wants the refresh token used even if the stored one was
// used recently (RefreshIdle).
func (t *Tokens) refresh(ctx context.Context, id string, force bool) (string, error) {
	const op = "connector: access token"
	c, err := t.store.Get(ctx, id)
	if err != nil {
		return "", err
	}
	switch c.State {
	case StateDeleted:
		return "", &Error{Op: op, Kind: NotFound, Err: fmt.Errorf("connection %s is deleted", id)}
	case StateNeedsConsent:
		return "", &Error{Op: op, Kind: NeedsConsent, Err: fmt.Errorf("connection %s needs consent: %s", id, c.LastError)}
	}
	var tok *oauth2.Token
	switch c.Mode {
	case Delegated:
		tok, err = t.refreshDelegated(ctx, c)
	case AppOnly:
		tok, err = t.appToken(ctx, c)
	default:
		return "", &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("connection %s has unknown mode %q", id, c.Mode)}
	}
	if err != nil {
		if IsKind(err, NeedsConsent) {
			t.needsConsent(ctx, id, err)
		}
		return "", err
	}
	t.remember(id, tok)
	t.logger.LogAttrs(ctx, slog.LevelDebug, "access token refreshed",
		slog.String("connection_id", id), slog.String("mode", string(c.Mode)),
		slog.Time("expires_at", tok.Expiry), slog.Bool("forced", force))
	return tok.AccessToken, nil
}

// refreshDelegated redeems the connection's refresh token and stores the
// rotated one. When Microsoft refuses the token and the stored one has
// changed since it was read, another replica rotated it: try once more with
// the fresh one.
func (t *Tokens) refreshDelegated(ctx context.Context, c Connection) (*oauth2.Token, error) {
	for attempt := 0; ; attempt++ {
		tok, err := t.redeem(ctx, c)
		if err == nil {
			return tok, nil
		}
		if attempt > 0 || !IsKind(err, NeedsConsent) {
			return nil, err
		}
		fresh, gerr := t.store.Get(ctx, c.ID)
		if gerr != nil || bytes.Equal(fresh.RefreshToken, c.RefreshToken) || fresh.State == StateDeleted {
			return nil, err
		}
		c = fresh
	}
}

func (t *Tokens) redeem(ctx context.Context, c Connection) (*oauth2.Token, error) {
	const op = "connector: access token"
	if len(c.RefreshToken) == 0 {
		return nil, &Error{Op: op, Kind: NeedsConsent, Code: "no_refresh_token", Err: fmt.Errorf("connection %s has no refresh token", c.ID)}
	}
	rt, reseal, err := t.sealer.OpenFor(c.Customer, c.ID, c.RefreshToken)
	if err != nil {
		return nil, fmt.Errorf("%s: connection %s: %w", op, c.ID, err)
	}
	tok, err := t.id.refresh(ctx, string(rt))
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" || tok.RefreshToken == string(rt) {
		// Not rotated: just note that the grant was used, and bind a
		// token sealed before tokens were bound to its connection.
		var rebound []byte
		if reseal {
			if rebound, err = t.sealer.SealFor(c.Customer, c.ID, rt); err != nil {
				return nil, fmt.Errorf("%s: connection %s: %w", op, c.ID, err)
			}
		}
		_, err := t.store.Update(ctx, c.ID, func(cur *Connection) error {
			if cur.State == StateDeleted {
				return errStaleToken
			}
			if rebound != nil && bytes.Equal(cur.RefreshToken, c.RefreshToken) {
				cur.RefreshToken = rebound
			}
			cur.TokenRefreshedAt = t.now().UTC()
			return nil
		})
		if err != nil && !errors.Is(err, errStaleToken) {
			t.logger.LogAttrs(ctx, slog.LevelWarn, "cannot record token refresh", slog.String("connection_id", c.ID), slog.Any("err", err))
		}
		return tok, nil
	}
	sealed, err := t.sealer.SealFor(c.Customer, c.ID, []byte(tok.RefreshToken))
	if err != nil {
		return nil, fmt.Errorf("%s: connection %s: %w", op, c.ID, err)
	}
	_, err = t.store.Update(ctx, c.ID, func(cur *Connection) error {
		if cur.State == StateDeleted || !bytes.Equal(cur.RefreshToken, c.RefreshToken) {
			return errStaleToken // rotated elsewhere, or wiped by a delete
		}
		cur.RefreshToken = sealed
		cur.TokenRefreshedAt = t.now().UTC()
		return nil
	})
	switch {
	case errors.Is(err, errStaleToken):
		// Another replica rotated first; its token is the one to keep. Our
		// access token is still good.
		t.logger.LogAttrs(ctx, slog.LevelInfo, "refresh token rotated elsewhere meanwhile; keeping the stored one", slog.String("connection_id", c.ID))
	case err != nil:
		// The rotated token is lost; Microsoft keeps the previous one valid
		// for a while, so the next refresh can still recover.
		return nil, fmt.Errorf("%s: connection %s: store rotated refresh token: %w", op, c.ID, err)
	}
	return tok, nil
}

// appToken gets a client credentials token. An empty sealed secret means
// mailgate's own app registration after admin consent in the connection's
// tenant.
func (t *Tokens) appToken(ctx context.Context, c Connection) (*oauth2.Token, error) {
	const op = "connector: access token"
	clientID, secret := c.ClientID, t.id.cfg.ClientSecret
	if len(c.ClientSecret) > 0 {
		plain, reseal, err := t.sealer.OpenFor(c.Customer, c.ID, c.ClientSecret)
		if err != nil {
			return nil, fmt.Errorf("%s: connection %s: %w", op, c.ID, err)
		}
		if reseal {
			t.rebindSecret(ctx, c, plain)
		}
		secret = string(plain)
	} else if clientID == "" {
		clientID = t.id.cfg.ClientID
	}
	if c.TenantID == "" {
		return nil, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("connection %s has no tenant id", c.ID)}
	}
	return t.id.AppTokenSource(ctx, c.TenantID, clientID, secret).Token()
}

// BindSealed stores every connection secret still sealed in the unbound
// form (from before secrets were bound to their connection) sealed for its
// connection, so that none can be moved to another connection, and
// returns how many connections it changed. A value that does not open is
// left alone (the importer reports it when it needs it); one changed
// meanwhile is left to whoever changed it.
func (t *Tokens) BindSealed(ctx context.Context) (int, error) {
	list, err := t.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("connector: bind sealed secrets: %w", err)
	}
	n := 0
	for _, c := range list {
		rebind := func(sealed []byte) []byte {
			if len(sealed) == 0 {
				return nil
			}
			plain, reseal, err := t.sealer.OpenFor(c.Customer, c.ID, sealed)
			if err != nil || !reseal {
				return nil
			}
			defer clear(plain)
			bound, err := t.sealer.SealFor(c.Customer, c.ID, plain)
			if err != nil {
				return nil
			}
			return bound
		}
		rt, cs := rebind(c.RefreshToken), rebind(c.ClientSecret)
		if rt == nil && cs == nil {
			continue
		}
		_, err := t.store.Update(ctx, c.ID, func(cur *Connection) error {
			changed := false
			if rt != nil && bytes.Equal(cur.RefreshToken, c.RefreshToken) {
				cur.RefreshToken, changed = rt, true
			}
			if cs != nil && bytes.Equal(cur.ClientSecret, c.ClientSecret) {
				cur.ClientSecret, changed = cs, true
			}
			if !changed {
				return errNoChange
			}
			return nil
		})
		switch {
		case errors.Is(err, errNoChange):
		case err != nil:
			return n, fmt.Errorf("connector: bind sealed secrets of %s: %w", c.ID, err)
		default:
			n++
		}
	}
	return n, nil
}

// rebindSecret stores a client secret sealed before secrets were bound to
// their connection again, sealed for it, unless it changed meanwhile. A
// failure is logged: the next use tries again.
func (t *Tokens) rebindSecret(ctx context.Context, c Connection, plain []byte) {
	rebound, err := t.sealer.SealFor(c.Customer, c.ID, plain)
	if err == nil {
		_, err = t.store.Update(ctx, c.ID, func(cur *Connection) error {
			if cur.State == StateDeleted || !bytes.Equal(cur.ClientSecret, c.ClientSecret) {
				return errNoChange
			}
			cur.ClientSecret = rebound
			return nil
		})
	}
	if err != nil && !errors.Is(err, errNoChange) {
		t.logger.LogAttrs(ctx, slog.LevelWarn, "cannot bind client secret to its connection", slog.String("connection_id", c.ID), slog.Any("err", err))
	}
}

// needsConsent moves a connection to needs_consent with a plain explanation.
func (t *Tokens) needsConsent(ctx context.Context, id string, cause error) {
	t.Forget(id)
	explanation := Explain(cause)
	_, err := t.store.Update(ctx, id, func(c *Connection) error {
		if c.State == StateNeedsConsent || !ValidTransition(c.State, StateNeedsConsent) {
			return errNoChange
		}
		c.State = StateNeedsConsent
		c.SetError(explanation, NeedsConsent)
		c.UpdatedBy = "importer"
		return nil
	})
	if errors.Is(err, errNoChange) {
		return
	}
	if err != nil {
		t.logger.LogAttrs(ctx, slog.LevelError, "cannot mark connection needs_consent",
			slog.String("connection_id", id), slog.Any("err", err))
		return
	}
	t.logger.LogAttrs(ctx, slog.LevelWarn, "connection needs consent",
		slog.String("connection_id", id), slog.String("code", codeOf(cause)), slog.String("reason", explanation))
}

var errNoChange = errors.New("no change")

func codeOf(err error) string {
	if e := classified(err); e != nil {
		return e.Code
	}
	return ""
}
