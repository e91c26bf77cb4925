package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/internal/kvrec"
)

// tenantPrefix marks the tenant bindings in the connections bucket; no
// connection id starts with it.
const tenantPrefix = "tenant."

// TenantBinding records that a Microsoft tenant belongs to a customer. An
// app-only connection through the operator's app may only be made for a
// tenant bound to the connection's customer; the first proven sign-in of a
// tenant's administrator binds it, and only the operator re-binds it.
type TenantBinding struct {
	TenantID  string    `json:"tenantId"`
	Customer  string    `json:"customer"`
	BoundBy   string    `json:"boundBy"` // "portal:<user> (admin <account>)" or "cli"
	CreatedAt time.Time `json:"createdAt"`
}

// ErrTenantBound is the answer when a tenant is already bound to another
// customer.
var ErrTenantBound error = &Error{Op: "connector: bind tenant", Kind: Invalid, Code: "tenant_bound",
	Err: errors.New("the Microsoft tenant belongs to another customer")}

// ValidTenantID checks a tenant id: a GUID, as the id_token's tid claim
// carries it.
func ValidTenantID(id string) error {
	if !guidRE.MatchString(id) {
		return &Error{Op: "connector: tenant", Kind: Invalid, Err: fmt.Errorf("invalid tenant id %q: want a GUID", id)}
	}
	return nil
}

func tenantKey(id string) string { return tenantPrefix + strings.ToLower(id) }

// BindTenant binds tenantID to customer unless it is bound already: binding
// again to the same customer is a no-op; a tenant of another customer is
// ErrTenantBound. The create is a compare-and-set, so of two customers
// racing for one tenant exactly one wins.
func (s *Store) BindTenant(ctx context.Context, tenantID, customer, by string) (TenantBinding, error) {
	const op = "connector: bind tenant"
	b, data, err := s.newBinding(op, tenantID, customer, by)
	if err != nil {
		return TenantBinding{}, err
	}
	if _, err := s.kv.Create(ctx, tenantKey(tenantID), data); err != nil {
		if !kvrec.Conflict(err) {
			return TenantBinding{}, fmt.Errorf("%s %s: %w", op, tenantID, err)
		}
		have, ok, err := s.TenantOwner(ctx, tenantID)
		if err != nil {
			return TenantBinding{}, err
		}
		if !ok {
			return TenantBinding{}, fmt.Errorf("%s %s: binding vanished while binding; try again", op, tenantID)
		}
		if have.Customer != customer {
			return have, ErrTenantBound
		}
		return have, nil
	}
	return b, nil
}

// newBinding checks the tenant and the customer and returns their binding,
// encoded.
func (s *Store) newBinding(op, tenantID, customer, by string) (TenantBinding, []byte, error) {
	if err := ValidTenantID(tenantID); err != nil {
		return TenantBinding{}, nil, err
	}
	if err := ValidCustomer(customer); err != nil {
		return TenantBinding{}, nil, err
	}
	b := TenantBinding{TenantID: strings.ToLower(tenantID), Customer: customer, BoundBy: by, CreatedAt: s.now().UTC()}
	data, err := json.Marshal(b)
	if err != nil {
		return TenantBinding{}, nil, fmt.Errorf("%s: %w", op, err)
	}
	return b, data, nil
}

// TenantOwner returns the binding of tenantID; ok is false when it is not
// bound.
func (s *Store) TenantOwner(ctx context.Context, tenantID string) (TenantBinding, bool, error) {
	const op = "connector: tenant owner"
	if err := ValidTenantID(tenantID); err != nil {
		return TenantBinding{}, false, err
	}
	e, err := s.kv.Get(ctx, tenantKey(tenantID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return TenantBinding{}, false, nil
	}
	if err != nil {
		return TenantBinding{}, false, fmt.Errorf("%s %s: %w", op, tenantID, err)
	}
	var b TenantBinding
	if err := json.Unmarshal(e.Value(), &b); err != nil {
		return TenantBinding{}, false, fmt.Errorf("%s %s: decode: %w", op, tenantID, err)
	}
	return b, true, nil
}

// RebindTenant binds tenantID to customer whatever it was bound to. Only
// the operator's CLI calls it.
func (s *Store) RebindTenant(ctx context.Context, tenantID, customer, by string) (TenantBinding, error) {
	const op = "connector: rebind tenant"
	b, data, err := s.newBinding(op, tenantID, customer, by)
	if err != nil {
		return TenantBinding{}, err
	}
	if _, err := s.kv.Put(ctx, tenantKey(tenantID), data); err != nil {
		return TenantBinding{}, fmt.Errorf("%s %s: %w", op, tenantID, err)
	}
	return b, nil
}

// UnbindTenant removes the binding of tenantID (the operator's CLI).
func (s *Store) UnbindTenant(ctx context.Context, tenantID string) error {
	if err := ValidTenantID(tenantID); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, tenantKey(tenantID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("connector: unbind tenant %s: %w", tenantID, err)
	}
	return nil
}

// TenantBindings lists every binding, ordered by tenant id.
func (s *Store) TenantBindings(ctx context.Context) ([]TenantBinding, error) {
	const op = "connector: list tenant bindings"
	keys, err := s.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return []TenantBinding{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := []TenantBinding{}
	for _, k := range keys {
		if !strings.HasPrefix(k, tenantPrefix) {
			continue
		}
		b, ok, err := s.TenantOwner(ctx, strings.TrimPrefix(k, tenantPrefix))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if ok {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TenantID < out[j].TenantID })
	return out, nil
}
