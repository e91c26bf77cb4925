package connector

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestSealer(t testing.TB) *Sealer {
	t.Helper()
	s, err := NewSealer(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealerRoundTrip(t *testing.T) {
	s := newTestSealer(t)
	for _, plain := range [][]byte{nil, []byte("x"), []byte("0.AXoA-refresh-token-" + strings.Repeat("z", 2000))} {
		sealed, err := s.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) >= 8 && bytes.Contains(sealed, plain) { // a short one may occur by chance
			t.Fatal("sealed value contains the plain text")
		}
		got, err := s.Open(sealed)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("Open = %q, want %q", got, plain)
		}
	}
	a, _ := s.Seal([]byte("same"))
	b, _ := s.Seal([]byte("same"))
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same value are equal: nonce reused")
	}
}

func TestSealerTamper(t *testing.T) {
	s := newTestSealer(t)
	sealed, err := s.Seal([]byte("refresh-token"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := s.Open(bad); !errors.Is(err, ErrSealed) {
			t.Fatalf("byte %d flipped: Open err = %v, want ErrSealed", i, err)
		}
	}
	for _, bad := range [][]byte{nil, sealed[:5], sealed[:keyIDLen+12], sealed[:len(sealed)-1]} {
		if _, err := s.Open(bad); !errors.Is(err, ErrSealed) {
			t.Fatalf("truncated to %d: Open err = %v, want ErrSealed", len(bad), err)
		}
	}
	other := newTestSealer(t)
	if _, err := other.Open(sealed); !errors.Is(err, ErrSealed) {
		t.Fatalf("other key: Open err = %v, want ErrSealed", err)
	}
}

func TestSealerRotation(t *testing.T) {
	oldKey, newKeyB := newKey(t), newKey(t)
	oldS, err := NewSealer(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	sealedOld, _ := oldS.Seal([]byte("sealed with the old key"))

	rotated, err := NewSealer(newKeyB, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rotated.Open(sealedOld)
	if err != nil || string(got) != "sealed with the old key" {
		t.Fatalf("rotated Open(old) = %q, %v", got, err)
	}
	sealedNew, _ := rotated.Seal([]byte("new"))
	if string(sealedNew[:keyIDLen]) != keyID(newKeyB) {
		t.Fatalf("Seal used key id %q, want the current key's %q", sealedNew[:keyIDLen], keyID(newKeyB))
	}
	if _, err := oldS.Open(sealedNew); err == nil {
		t.Fatal("old-only sealer opened a value sealed with the new key")
	}
}

func TestNewSealerKeySize(t *testing.T) {
	if _, err := NewSealer(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
	if _, err := NewSealer(newKey(t), make([]byte, 31)); err == nil {
		t.Fatal("31-byte old key accepted")
	}
}

func TestParseKey(t *testing.T) {
	key := newKey(t)
	key[0], key[1] = 0xfb, 0xff // force '+' '/' vs '-' '_' to differ between alphabets
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"std padded", base64.StdEncoding.EncodeToString(key), true},
		{"std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"url padded", base64.URLEncoding.EncodeToString(key), true},
		{"url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"surrounding newline", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"empty", "", false},
		{"short", base64.StdEncoding.EncodeToString(key[:31]), false},
		{"long", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 1)), false},
		{"not base64", "this is not base64 but a secret!!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.ok {
				if err != nil || !bytes.Equal(got, key) {
					t.Fatalf("ParseKey = %x, %v; want the key", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("ParseKey accepted it")
			}
			if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
				t.Fatalf("error echoes the key: %v", err)
			}
		})
	}
}

func BenchmarkSealOpen(b *testing.B) {
	s := newTestSealer(b)
	plain := []byte(strings.Repeat("r", 1500)) // a Microsoft refresh token is about 1-2 KB
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		sealed, err := s.Seal(plain)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Open(sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSealForBindsConnection moves a sealed secret as an attacker with
// write access to the connections bucket would: into another connection of
// the same customer, and into another customer's connection. It opens in
// neither.
func TestSealForBindsConnection(t *testing.T) {
	s := newTestSealer(t)
	sealed, err := s.SealFor("acme", "con_a", []byte("refresh-token-of-a"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-token-of-a")) {
		t.Fatal("sealed value contains the plain text")
	}
	if got, reseal, err := s.OpenFor("acme", "con_a", sealed); err != nil || reseal || string(got) != "refresh-token-of-a" {
		t.Fatalf("OpenFor own connection = %q, %v, %v", got, reseal, err)
	}
	for _, where := range [][2]string{{"acme", "con_b"}, {"globex", "con_a"}, {"globex", "con_b"}, {"acmecon_a", ""}, {"", "acmecon_a"}} {
		if got, _, err := s.OpenFor(where[0], where[1], sealed); !errors.Is(err, ErrSealed) || got != nil {
			t.Errorf("secret of acme/con_a opened as %s/%s: %q, %v", where[0], where[1], got, err)
		}
	}
	// Nor does the unbound Open take it.
	if _, err := s.Open(sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("Open of a bound value: %v", err)
	}
	if _, err := s.SealFor("", "con_a", []byte("x")); err == nil {
		t.Error("SealFor without a customer accepted")
	}
	// A value sealed before binding still opens, once, and asks to be
	// sealed again.
	legacy, _ := s.Seal([]byte("old-token"))
	if got, reseal, err := s.OpenFor("acme", "con_a", legacy); err != nil || !reseal || string(got) != "old-token" {
		t.Errorf("OpenFor of an unbound value = %q, reseal %v, %v", got, reseal, err)
	}
	// Rotation: a bound value of the old key opens with the new sealer.
	old := newKey(t)
	s1, _ := NewSealer(old)
	v, _ := s1.SealFor("acme", "con_a", []byte("t"))
	s2, _ := NewSealer(newKey(t), old)
	if got, _, err := s2.OpenFor("acme", "con_a", v); err != nil || string(got) != "t" {
		t.Errorf("bound value after key rotation: %q, %v", got, err)
	}
}
