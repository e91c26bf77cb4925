package portal

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// User is a portal user of the built-in directory.
type User struct {
	Name         string    `json:"name"`
	Customer     string    `json:"customer"`
	Groups       []string  `json:"groups"`
	PasswordHash []byte    `json:"-"` // never leaves the store in JSON
	CreatedAt    time.Time `json:"createdAt"`
}

// InGroup reports whether the user is a member of group.
func (u User) InGroup(group string) bool { return slices.Contains(u.Groups, group) }

// storedUser is the KV record; unlike User it carries the hash.
type storedUser struct {
	User
	PasswordHash []byte `json:"passwordHash"`
}

// Users is the built-in user directory on the KV bucket "users".
type Users struct {
	kv    jetstream.KeyValue
	cost  int
	dummy []byte // hash compared against for unknown names
}

// ErrUserExists is returned by Users.Add for a name already taken.
var ErrUserExists = errors.New("user exists")

// errBadLogin is the one answer for an unknown name or a wrong password.
var errBadLogin = errors.New("wrong name or password")

// NewUsers opens (or creates) the KV bucket "users".
func NewUsers(ctx context.Context, js jetstream.JetStream) (*Users, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "users", Description: "mailgate portal users"})
	if err != nil {
		return nil, fmt.Errorf("users: open bucket: %w", err)
	}
	return newUsers(kv, bcrypt.DefaultCost)
}

func newUsers(kv jetstream.KeyValue, cost int) (*Users, error) {
	dummy, err := bcrypt.GenerateFromPassword([]byte("mailgate-dummy-password"), cost)
	if err != nil {
		return nil, fmt.Errorf("users: dummy hash: %w", err)
	}
	return &Users{kv: kv, cost: cost, dummy: dummy}, nil
}

// userKey encodes a user name as a KV key (names may hold '@' and spaces).
func userKey(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.ToLower(name)))
}

// Add creates a user with a bcrypt hash of password. Names are unique,
// compared without case.
func (u *Users) Add(ctx context.Context, name, customer, password string, groups []string) error {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		return fmt.Errorf("users: add: %w", invalid("name is empty"))
	case connector.ValidCustomer(customer) != nil:
		return fmt.Errorf("users: add %s: %w", name, invalid("customer must be 1-63 of a-z 0-9 _ - starting with a letter or digit"))
	case len(password) < 8:
		return fmt.Errorf("users: add %s: %w", name, invalid("password must have at least 8 characters"))
	case len(password) > 72:
		return fmt.Errorf("users: add %s: %w", name, invalid("password must have at most 72 bytes"))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), u.cost)
	if err != nil {
		return fmt.Errorf("users: add %s: hash: %w", name, err)
	}
	rec := storedUser{User: User{Name: name, Customer: customer, Groups: groups, CreatedAt: time.Now().UTC()}, PasswordHash: hash}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("users: add %s: %w", name, err)
	}
	if _, err := u.kv.Create(ctx, userKey(name), b); err != nil {
		if kvrec.Conflict(err) {
			return fmt.Errorf("users: add %s: %w", name, ErrUserExists)
		}
		return fmt.Errorf("users: add %s: %w", name, err)
	}
	return nil
}

func (u *Users) get(ctx context.Context, name string) (storedUser, error) {
	var rec storedUser
	e, err := u.kv.Get(ctx, userKey(name))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return rec, errNotFound
		}
		return rec, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, err
	}
	rec.User.PasswordHash = rec.PasswordHash
	return rec, nil
}

// List returns all users, sorted by name, without password hashes.
func (u *Users) List(ctx context.Context) ([]User, error) {
	lister, err := u.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("users: list: %w", err)
	}
	var out []User
	for k := range lister.Keys() {
		e, err := u.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("users: list: %w", err)
		}
		var rec storedUser
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return nil, fmt.Errorf("users: list: %s: %w", k, err)
		}
		out = append(out, rec.User)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Remove deletes a user.
func (u *Users) Remove(ctx context.Context, name string) error {
	if _, err := u.get(ctx, name); err != nil {
		return fmt.Errorf("users: remove %s: %w", name, err)
	}
	if err := u.kv.Purge(ctx, userKey(name)); err != nil {
		return fmt.Errorf("users: remove %s: %w", name, err)
	}
	return nil
}

// Authenticate checks a name and password. An unknown name costs the same
// bcrypt comparison as a wrong password and gets the same error.
func (u *Users) Authenticate(ctx context.Context, name, password string) (User, error) {
	rec, err := u.get(ctx, strings.TrimSpace(name))
	if err != nil && !errors.Is(err, errNotFound) {
		return User{}, fmt.Errorf("users: authenticate: %w", err)
	}
	hash := u.dummy
	if err == nil {
		hash = rec.PasswordHash
	}
	cmpErr := bcrypt.CompareHashAndPassword(hash, []byte(password))
	if err != nil || cmpErr != nil {
		return User{}, errBadLogin
	}
	rec.User.PasswordHash = nil
	return rec.User, nil
}

// constantEqual compares two strings in constant time.
func constantEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
