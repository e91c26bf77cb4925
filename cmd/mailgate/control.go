package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/internal/kvrec"
	"github.com/mailgate/mailgate/portal"
)

// The control service lets CLI commands ask a running mailgate for what
// needs Microsoft: redeeming a code and testing a connection need tokens and
// the Graph client, which only `serve` holds. It is a NATS micro service, so
// with several replicas any one of them answers. Its subjects stay outside
// "mailgate.>", which the MAILGATE stream captures: a request there would be
// answered by JetStream's publish acknowledgement.
//
// Being on NATS is not enough to use it. Every request and answer is sealed
// (AES-256-GCM) with a key derived from MAILGATE_SECRET_KEY, which only the
// operator's processes hold: a request that does not open is refused, so
// the seal is the caller's authentication, and a client secret never
// crosses NATS in plain text. A request carries its time and a random id,
// and each id is accepted once (KV bucket "control", compare-and-set), so a
// recorded request cannot be replayed. The embedded server's permissions
// add that only the mailgate processes may subscribe to the subjects.
const controlSubject = "mailgatectl"

// controlBucket remembers the ids of accepted requests for controlWindow.
const controlBucket = "control"

// controlWindow is how far a request's time may be from the answerer's.
const controlWindow = 2 * time.Minute

type controlRequest struct {
	Actor           string    `json:"actor"`
	Customer        string    `json:"customer,omitempty"`
	Code            string    `json:"code,omitempty"`
	ConnectionID    string    `json:"connectionId,omitempty"`
	TenantID        string    `json:"tenantId,omitempty"`
	ClientID        string    `json:"clientId,omitempty"`
	ClientSecret    string    `json:"clientSecret,omitempty"`
	SecretExpiresAt time.Time `json:"secretExpiresAt,omitempty"`
	Mailbox         string    `json:"mailbox,omitempty"`
	// The wizard's existing-mail and after-import choices (add-app); nil
	// takes the wizard's defaults.
	Backfill    *connector.Backfill    `json:"backfill,omitempty"`
	PostProcess *connector.PostProcess `json:"postProcess,omitempty"`
}

type controlResult struct {
	Connection connector.Connection `json:"connection"`
	Test       portal.TestResult    `json:"test"`
	Error      string               `json:"error,omitempty"`
}

// controlEnvelope is what is inside a sealed request.
type controlEnvelope struct {
	ID      string         `json:"id"`
	Op      string         `json:"op"`
	Time    time.Time      `json:"time"`
	Request controlRequest `json:"request"`
}

// errControlAuth answers a request that does not open with the key.
var errControlAuth = errors.New("control request refused: not sealed with this installation's MAILGATE_SECRET_KEY")

// controlCipher seals the control service's messages.
type controlCipher struct{ aead cipher.AEAD }

// newControlCipher derives the control key from the sealing key, so the
// two are never the same key used for two purposes.
func newControlCipher(secretKey []byte) (*controlCipher, error) {
	if len(secretKey) != connector.KeySize {
		return nil, errors.New("control: MAILGATE_SECRET_KEY (or MAILGATE_SECRET_KEY_FILE) is needed to talk to the control service")
	}
	key, err := hkdf.Key(sha256.New, secretKey, nil, "mailgate control service v1", 32)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	return &controlCipher{aead: aead}, nil
}

// seal encrypts plain, bound to ad (the subject, or the request id for an
// answer).
func (c *controlCipher) seal(plain []byte, ad string) []byte {
	nonce := make([]byte, c.aead.NonceSize(), c.aead.NonceSize()+len(plain)+c.aead.Overhead())
	_, _ = rand.Read(nonce)
	return c.aead.Seal(nonce, nonce, plain, []byte(ad))
}

func (c *controlCipher) open(sealed []byte, ad string) ([]byte, error) {
	n := c.aead.NonceSize()
	if len(sealed) < n+c.aead.Overhead() {
		return nil, errControlAuth
	}
	plain, err := c.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, errControlAuth
	}
	return plain, nil
}

// cliSecretKey is the sealing key as a CLI command finds it: from its
// configuration, else the key `mailgate demo` keeps in the data directory.
func cliSecretKey(cfg *Config) []byte {
	if cfg.SecretKey != nil {
		return cfg.SecretKey
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "demo-secret.key"))
	if err != nil {
		return nil
	}
	k, err := parseKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	return k
}

// control sends one sealed request to the control service and opens its
// answer.
func control(ctx context.Context, nc *nats.Conn, secretKey []byte, op string, req controlRequest, res *controlResult) error {
	cc, err := newControlCipher(secretKey)
	if err != nil {
		return err
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	env := controlEnvelope{ID: hex.EncodeToString(id), Op: op, Time: time.Now().UTC(), Request: req}
	b, err := json.Marshal(env)
	if err != nil {
		return err
	}
	subject := controlSubject + "." + op
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, subject, cc.seal(b, subject))
	clear(b)
	if errors.Is(err, nats.ErrNoResponders) {
		return errors.New("no running mailgate portal answered (start `mailgate serve` with role portal or all, or point MAILGATE_NATS_URL at its NATS)")
	}
	if err != nil {
		return fmt.Errorf("control %s: %w", op, err)
	}
	plain, err := cc.open(msg.Data, "reply:"+env.ID)
	if err != nil {
		// Refusals of requests that did not open come back unsealed.
		var refusal controlResult
		if json.Unmarshal(msg.Data, &refusal) == nil && refusal.Error != "" {
			return fmt.Errorf("control %s: %s", op, refusal.Error)
		}
		return fmt.Errorf("control %s: the answer is not sealed with this installation's key", op)
	}
	if err := json.Unmarshal(plain, res); err != nil {
		return fmt.Errorf("control %s: bad answer: %w", op, err)
	}
	if res.Error != "" {
		return errors.New(res.Error)
	}
	return nil
}

// startControl registers the control service on nc. It runs beside the
// portal, whose rules it applies: with several roles, the processes that
// serve the portal answer the CLI.
func startControl(ctx context.Context, nc *nats.Conn, w *Wiring, secretKey []byte, replicas int, log *slog.Logger) (micro.Service, error) {
	cc, err := newControlCipher(secretKey)
	if err != nil {
		return nil, err
	}
	seen, err := w.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: controlBucket, Description: "ids of accepted control requests", TTL: 2 * controlWindow, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("control service: bucket %s: %w", controlBucket, err)
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "mailgate-control",
		Version:     "1.0.0",
		Description: "redeem codes and test connections for the mailgate CLI",
	})
	if err != nil {
		return nil, fmt.Errorf("control service: %w", err)
	}
	// accept opens a request and checks its time and that its id is new.
	accept := func(r micro.Request, op string) (controlEnvelope, error) {
		var env controlEnvelope
		plain, err := cc.open(r.Data(), r.Subject())
		if err != nil {
			return env, err
		}
		defer clear(plain)
		if err := json.Unmarshal(plain, &env); err != nil || env.Op != op || len(env.ID) != 32 {
			return env, errControlAuth
		}
		if d := time.Since(env.Time); d > controlWindow || d < -controlWindow {
			return env, fmt.Errorf("control request refused: sent at %s, more than %s from this host's clock", env.Time.Format(time.RFC3339), controlWindow)
		}
		if _, err := seen.Create(ctx, env.ID, nil); err != nil {
			if kvrec.Conflict(err) {
				return env, errors.New("control request refused: already answered (a replay)")
			}
			return env, fmt.Errorf("control: %w", err)
		}
		return env, nil
	}
	grp := svc.AddGroup(controlSubject)
	handle := func(op string, fn func(context.Context, controlRequest) (controlResult, error)) error {
		return grp.AddEndpoint(op, micro.HandlerFunc(func(r micro.Request) {
			env, err := accept(r, op)
			if err != nil {
				log.Warn("control request refused", "op", op, "err", err)
				_ = r.RespondJSON(controlResult{Error: err.Error()})
				return
			}
			res, err := fn(ctx, env.Request)
			if err != nil {
				log.Warn("control request failed", "op", op, "actor", env.Request.Actor, "err", err)
				res.Error = err.Error()
				if wait, ok := portal.RetryAfter(err); ok {
					res.Error = fmt.Sprintf("%s: too many failed attempts, try again in %s", op, wait.Round(time.Second))
				}
			}
			res.Connection.RefreshToken, res.Connection.ClientSecret = nil, nil
			b, _ := json.Marshal(res)
			_ = r.Respond(cc.seal(b, "reply:"+env.ID))
		}))
	}
	// The portal's rules, as the DMS API and the wizard keep them.
	activation := w.Portal.Activation()
	result := func(c connector.Connection, t portal.TestResult, err error) (controlResult, error) {
		return controlResult{Connection: c, Test: t}, err
	}
	errs := []error{
		handle("redeem", func(ctx context.Context, req controlRequest) (controlResult, error) {
			// The DMS API's rules and failure limits, counted for the CLI
			// as a whole and for the customer.
			return result(activation.RedeemLimited(ctx, req.Customer, req.Code, req.Actor, "cli", "cli:"+req.Customer))
		}),
		handle("test", func(ctx context.Context, req controlRequest) (controlResult, error) {
			return result(activation.Retest(ctx, req.ConnectionID, req.Actor))
		}),
		handle("add-app", func(ctx context.Context, req controlRequest) (controlResult, error) {
			return result(activation.AddApp(ctx, portal.AppConnection{
				Customer:        req.Customer,
				TenantID:        req.TenantID,
				ClientID:        req.ClientID,
				ClientSecret:    []byte(req.ClientSecret),
				SecretExpiresAt: req.SecretExpiresAt,
				Mailbox:         req.Mailbox,
				Backfill:        req.Backfill,
				PostProcess:     req.PostProcess,
			}, req.Actor))
		}),
	}
	if err := errors.Join(errs...); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("control service: %w", err)
	}
	return svc, nil
}
