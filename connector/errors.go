package connector

import (
	"errors"
	"time"
)

// Kind classifies a failure so that callers decide by kind, not by string.
type Kind int

const (
	// Other is an unclassified failure.
	Other Kind = iota
	// Transient failures (network, 5xx, truncated bodies) are worth retrying soon.
	Transient
	// Throttled means Microsoft asked us to slow down; RetryAfter says for how long.
	Throttled
	// NeedsConsent means a person must consent again: revoked or expired refresh
	// token, expired client secret, missing consent, MFA or Conditional Access.
	NeedsConsent
	// AccessDenied means the account has no rights to the mailbox.
	AccessDenied
	// NotFound means the mailbox, folder, message or attachment does not exist.
	NotFound
	// SyncReset means the delta state is gone; start a full sync.
	SyncReset
	// Invalid means the caller's input was rejected.
	Invalid
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Throttled:
		return "throttled"
	case NeedsConsent:
		return "needs_consent"
	case AccessDenied:
		return "access_denied"
	case NotFound:
		return "not_found"
	case SyncReset:
		return "sync_reset"
	case Invalid:
		return "invalid"
	}
	return "other"
}

// ParseKind is the Kind whose String is name; Other for any other name.
func ParseKind(name string) Kind {
	for k := Other; k <= Invalid; k++ {
		if k.String() == name {
			return k
		}
	}
	return Other
}

// Error is a classified failure of an operation against Microsoft 365.
type Error struct {
	Op         string        // the operation, e.g. "graph: delta"
	Kind       Kind          // what the caller should do about it
	Code       string        // Microsoft's code, e.g. "ErrorAccessDenied" or "AADSTS50173"
	RetryAfter time.Duration // for Throttled: how long Microsoft asked us to wait
	Err        error         // the underlying error

	oauthError string // a token endpoint's OAuth error ("invalid_grant"), for Explain
}

func (e *Error) Error() string {
	msg := e.Kind.String()
	if e.Op != "" {
		msg = e.Op + ": " + msg
	}
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// E builds a classified error. An empty op leaves the operation to the
// wrapper that names it, so the package prefix appears once.
func E(op string, kind Kind, err error) *Error {
	return &Error{Op: op, Kind: kind, Err: err}
}

// classified returns the *Error in err's chain that says what err is: the
// first one with a kind other than Other, so that a wrapper that does not
// classify lets the kind of what it wraps show through (Upspin's rule); or
// else the first *Error; or nil.
func classified(err error) *Error {
	var first *Error
	for {
		var e *Error
		if !errors.As(err, &e) {
			return first
		}
		if e.Kind != Other {
			return e
		}
		if first == nil {
			first = e
		}
		err = e.Err
	}
}

// KindOf reports the kind of err: that of the first *Error in its chain
// that has one other than Other, or Other.
func KindOf(err error) Kind {
	if e := classified(err); e != nil {
		return e.Kind
	}
	return Other
}

// RetryAfter reports how long Microsoft asked to wait, or 0.
func RetryAfter(err error) time.Duration {
	if e := classified(err); e != nil {
		return e.RetryAfter
	}
	return 0
}

// IsKind reports whether err is classified as kind.
func IsKind(err error, kind Kind) bool { return KindOf(err) == kind }
