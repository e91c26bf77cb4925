package connector

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive/archivetest"
)

type change struct{ before, after Connection }

// changes records OnChange calls.
type changes struct {
	mu  sync.Mutex
	all []change
}

func (c *changes) record(_ context.Context, before, after Connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, change{before, after})
}

func (c *changes) list() []change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]change(nil), c.all...)
}

// clock is a fake clock that moves one millisecond on every reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestStore(t testing.TB) (*Store, *changes) {
	t.Helper()
	js, _ := archivetest.RunJetStream(t)
	ch := &changes{}
	s, err := NewStore(context.Background(), js, StoreOptions{OnChange: ch.record, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	return s, ch
}

func TestStoreCreateGetList(t *testing.T) {
	ctx := context.Background()
	s, ch := newTestStore(t)

	if got, err := s.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("List on empty bucket = %v, %v", got, err)
	}
	if _, err := s.Get(ctx, "con_missing"); KindOf(err) != NotFound {
		t.Fatalf("Get missing: err = %v, want NotFound", err)
	}

	var ids []string
	for i := range 3 {
		c, err := s.Create(ctx, Connection{Customer: "acme", Mailbox: "rechnungen" + strconv.Itoa(i) + "@acme.example", Mode: Delegated, CreatedBy: "portal:alice"})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^con_[a-z2-7]{26}$`).MatchString(c.ID) {
			t.Fatalf("id %q does not look like con_ + 26 base32", c.ID)
		}
		if c.State != StatePending || c.Folder != "inbox" || c.CreatedAt.IsZero() || !c.UpdatedAt.Equal(c.CreatedAt) {
			t.Fatalf("defaults not applied: %+v", c)
		}
		ids = append(ids, c.ID)
	}
	got, err := s.Get(ctx, ids[1])
	if err != nil || got.Mailbox != "rechnungen1@acme.example" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("List = %d, %v", len(all), err)
	}
	for i, c := range all {
		if c.ID != ids[i] {
			t.Fatalf("List order: %d is %s, want %s", i, c.ID, ids[i])
		}
	}
	if n := len(ch.list()); n != 3 {
		t.Fatalf("OnChange calls after 3 creates = %d", n)
	}
	if c := ch.list()[0]; c.before.ID != "" || c.after.ID != ids[0] {
		t.Fatalf("create change = %+v", c)
	}

	if _, err := s.Create(ctx, Connection{ID: ids[0], Customer: "acme"}); KindOf(err) != Invalid {
		t.Fatalf("Create with existing id: err = %v, want Invalid", err)
	}
	if _, err := s.Create(ctx, Connection{Customer: "Acme Corp"}); KindOf(err) != Invalid {
		t.Fatalf("Create with bad customer: err = %v, want Invalid", err)
	}
}

func TestStoreUpdateConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	c, err := s.Create(ctx, Connection{Customer: "acme", Mode: Delegated})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	var calls sync.Map
	errs := make(chan error, n)
	for g := range n {
		wg.Go(func() {
			_, err := s.Update(ctx, c.ID, func(c *Connection) error {
				k, _ := calls.LoadOrStore(g, new(int))
				*k.(*int)++
				cnt, _ := strconv.Atoi(c.LastError)
				c.LastError = strconv.Itoa(cnt + 1)
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastError != strconv.Itoa(n) {
		t.Fatalf("counter = %s after %d concurrent increments: updates lost", got.LastError, n)
	}
	retries := 0
	calls.Range(func(_, v any) bool { retries += *v.(*int) - 1; return true })
	t.Logf("%d increments, %d compare-and-set retries", n, retries)
}

func TestStoreUpdateRules(t *testing.T) {
	ctx := context.Background()
	s, ch := newTestStore(t)
	c, err := s.Create(ctx, Connection{Customer: "acme", Mode: Delegated})
	if err != nil {
		t.Fatal(err)
	}

	// An invalid transition is refused and changes nothing.
	_, err = s.Update(ctx, c.ID, func(c *Connection) error { c.State = StatePaused; c.Mailbox = "x@y"; return nil })
	if KindOf(err) != Invalid {
		t.Fatalf("pending→paused: err = %v, want Invalid", err)
	}
	if got, _ := s.Get(ctx, c.ID); got.State != StatePending || got.Mailbox != "" {
		t.Fatalf("refused update was written: %+v", got)
	}

	// fn's error aborts.
	boom := errors.New("boom")
	if _, err := s.Update(ctx, c.ID, func(*Connection) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn error: got %v", err)
	}

	// ID and CreatedAt stay; UpdatedAt moves; OnChange on a state change only.
	before := len(ch.list())
	got, err := s.Update(ctx, c.ID, func(c *Connection) error {
		c.ID, c.CreatedAt, c.State = "con_other", time.Time{}, StateActive
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || !got.CreatedAt.Equal(c.CreatedAt) || got.UpdatedAt.Before(c.UpdatedAt) {
		t.Fatalf("update changed identity fields: %+v", got)
	}
	if _, err := s.Update(ctx, c.ID, func(c *Connection) error { c.Mailbox = "a@b"; return nil }); err != nil {
		t.Fatal(err)
	}
	changes := ch.list()[before:]
	if len(changes) != 1 || changes[0].before.State != StatePending || changes[0].after.State != StateActive {
		t.Fatalf("OnChange calls = %+v, want exactly pending→active", changes)
	}
	if _, err := s.Update(ctx, "con_missing", func(*Connection) error { return nil }); KindOf(err) != NotFound {
		t.Fatalf("Update missing: %v", err)
	}
}

func TestStoreDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	c, err := s.Create(ctx, Connection{Customer: "acme", Mode: AppOnly, RefreshToken: []byte("sealed-rt"), ClientSecret: []byte("sealed-secret")})
	if err != nil {
		t.Fatal(err)
	}
	del, err := s.Delete(ctx, c.ID, "portal:bob")
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatalf("deleted entry not kept: %v", err)
	}
	for _, x := range []Connection{del, got} {
		if x.State != StateDeleted || x.RefreshToken != nil || x.ClientSecret != nil || x.UpdatedBy != "portal:bob" {
			t.Fatalf("after delete: %+v", x)
		}
	}
	if _, err := s.Update(ctx, c.ID, func(c *Connection) error { c.State = StateActive; return nil }); KindOf(err) != Invalid {
		t.Fatalf("deleted→active: err = %v, want Invalid", err)
	}
}

func TestValidTransition(t *testing.T) {
	all := []State{StatePending, StateActive, StatePaused, StateNeedsConsent, StateFailing, StateDeleted}
	allowed := map[[2]State]bool{
		{StatePending, StateActive}: true, {StatePending, StateFailing}: true, {StatePending, StateNeedsConsent}: true,
		{StateActive, StatePaused}: true, {StateActive, StateNeedsConsent}: true, {StateActive, StateFailing}: true,
		{StatePaused, StateActive}: true, {StatePaused, StateNeedsConsent}: true,
		{StateFailing, StateActive}: true, {StateFailing, StatePaused}: true, {StateFailing, StateNeedsConsent}: true,
		{StateNeedsConsent, StateActive}: true, {StateNeedsConsent, StatePending}: true,
	}
	for _, from := range all {
		for _, to := range all {
			want := from == to || allowed[[2]State{from, to}] || (to == StateDeleted)
			if got := ValidTransition(from, to); got != want {
				t.Errorf("ValidTransition(%s, %s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestValidCustomer(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"acme", true}, {"a", true}, {"0-firma_de", true}, {"a" + strings.Repeat("b", 62), true},
		{"", false}, {"Acme", false}, {"-acme", false}, {"_acme", false}, {"acme.de", false}, {"acme de", false},
		{"acme>", false}, {"acme*", false}, {"a" + strings.Repeat("b", 63), false}, {"ümlaut", false},
	}
	for _, tt := range tests {
		if err := ValidCustomer(tt.id); (err == nil) != tt.ok {
			t.Errorf("ValidCustomer(%q) = %v, want ok=%v", tt.id, err, tt.ok)
		}
	}
}

func BenchmarkStoreUpdate(b *testing.B) {
	ctx := context.Background()
	s, _ := newTestStore(b)
	c, err := s.Create(ctx, Connection{Customer: "acme", Mode: Delegated})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Update(ctx, c.ID, func(c *Connection) error { c.LastError = "x"; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
