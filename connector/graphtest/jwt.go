package graphtest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"time"
)

// signJWT signs claims with the server's RS256 key.
func (s *Server) signJWT(claims map[string]any) string {
	key, kid := s.signingKey()
	hdr, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "RS256", "kid": kid, "x5t": kid})
	body, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(in))
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	if err != nil {
		panic("graphtest: sign: " + err.Error())
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// verifyJWT checks signature and time and returns the claims.
func (s *Server) verifyJWT(tok string, now time.Time) (map[string]any, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, tokenInvalid("IDX14100: JWT is not well formed, there are no dots (.).")
	}
	key, _ := s.signingKey()
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, tokenInvalid("Invalid signature.")
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		return nil, tokenInvalid("Invalid signature.")
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, tokenInvalid("IDX14102: Unable to decode the payload.")
	}
	claims := map[string]any{}
	if err := json.Unmarshal(body, &claims); err != nil {
		return nil, tokenInvalid("IDX14102: Unable to decode the payload.")
	}
	exp, _ := claims["exp"].(float64)
	nbf, _ := claims["nbf"].(float64)
	if now.Unix() >= int64(exp) {
		return nil, tokenInvalid("Lifetime validation failed, the token is expired.")
	}
	if nbf != 0 && now.Unix()+300 < int64(nbf) {
		return nil, tokenInvalid("Lifetime validation failed, the token is not yet valid.")
	}
	return claims, nil
}

// jwks is the key set document.
func (s *Server) jwks(issuer string) map[string]any {
	key, kid := s.signingKey()
	return map[string]any{"keys": []map[string]any{{
		"kty":    "RSA",
		"use":    "sig",
		"kid":    kid,
		"x5t":    kid,
		"n":      base64.RawURLEncoding.EncodeToString(key.PublicKey.N.Bytes()),
		"e":      base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.PublicKey.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(s.keys.cert)},
		"issuer": issuer,
	}}}
}

func claimString(c map[string]any, k string) string {
	v, _ := c[k].(string)
	return v
}

// tokenInvalid is why Graph refuses a token; it is Graph's message text.
type tokenInvalid string

func (e tokenInvalid) Error() string { return string(e) }
