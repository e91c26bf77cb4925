package connector

import (
	"errors"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/archive/archivetest"
)

const testTenant = "1b7e2c44-5f0a-4c1e-9d7b-3a2f6e8c9d01"

func TestTenantBinding(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	s, err := NewStore(ctx, js, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.TenantOwner(ctx, testTenant); err != nil || ok {
		t.Fatalf("unbound tenant: %v %v", ok, err)
	}
	if _, err := s.BindTenant(ctx, "firma.example", "acme", "test"); !IsKind(err, Invalid) {
		t.Errorf("a domain is not a tenant id: %v", err)
	}
	if _, err := s.BindTenant(ctx, testTenant, "acme", "portal:anna"); err != nil {
		t.Fatal(err)
	}
	// Again for the same customer (upper case): a no-op.
	if b, err := s.BindTenant(ctx, "1B7E2C44-5F0A-4C1E-9D7B-3A2F6E8C9D01", "acme", "portal:other"); err != nil || b.BoundBy != "portal:anna" {
		t.Errorf("rebinding to the owner: %+v %v", b, err)
	}
	// Another customer is refused and the binding stays.
	if b, err := s.BindTenant(ctx, testTenant, "globex", "portal:mallory"); !errors.Is(err, ErrTenantBound) || b.Customer != "acme" {
		t.Errorf("another customer: %+v %v, want ErrTenantBound", b, err)
	}
	// Bindings are not connections.
	if _, err := s.Create(ctx, Connection{ID: "tenant." + testTenant, Customer: "globex", Mailbox: "a@b.example"}); !IsKind(err, Invalid) {
		t.Errorf("a connection with a binding's key: %v", err)
	}
	if _, err := s.Get(ctx, "tenant."+testTenant); !IsKind(err, NotFound) {
		t.Errorf("Get of a binding: %v", err)
	}
	if cs, err := s.List(ctx); err != nil || len(cs) != 0 {
		t.Errorf("List: %+v %v, want no connections", cs, err)
	}
	// The operator re-binds and unbinds.
	if _, err := s.RebindTenant(ctx, testTenant, "globex", "cli"); err != nil {
		t.Fatal(err)
	}
	if b, ok, _ := s.TenantOwner(ctx, testTenant); !ok || b.Customer != "globex" {
		t.Errorf("after rebind: %+v", b)
	}
	if bs, err := s.TenantBindings(ctx); err != nil || len(bs) != 1 || bs[0].Customer != "globex" {
		t.Errorf("bindings %+v %v", bs, err)
	}
	if err := s.UnbindTenant(ctx, testTenant); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.TenantOwner(ctx, testTenant); ok {
		t.Error("still bound after unbind")
	}
}

// TestBindTenantRace: of many customers binding one tenant at once,
// exactly one wins and every other one is told it is bound.
func TestBindTenantRace(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	s, err := NewStore(ctx, js, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	customers := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"}
	errs := make([]error, len(customers))
	var wg sync.WaitGroup
	for i, c := range customers {
		wg.Go(func() { _, errs[i] = s.BindTenant(ctx, testTenant, c, "test") })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrTenantBound):
			t.Errorf("%s: %v", customers[i], err)
		}
	}
	if won != 1 {
		t.Fatalf("%d customers bound the tenant, want 1", won)
	}
}
