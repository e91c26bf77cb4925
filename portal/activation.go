package portal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// Activation is where connections are tested and become active: the
// connect wizard, the DMS API and the control service behind `mailgate
// connections redeem|test|add-app` all call it, so every route keeps the
// same rules, limits and stored outcome, as Miniflux's UI and API share
// one validator and one storage.
type Activation struct {
	deps    Deps
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	// fails limits failed redeems per who is asking (an API key, a
	// client address, the CLI, a customer).
	fails *failureLimiter
}

func newActivation(deps Deps, log *slog.Logger, now func() time.Time, m *metrics) *Activation {
	return &Activation{deps: deps, log: log, now: now, metrics: m, fails: newFailureLimiter(12*time.Second, 5)}
}

// Checked is a connection with the outcome of its test.
type Checked struct {
	Connection connector.Connection
	Test       TestResult
	Err        error // the test's error, if it had one
	Passed     bool
}

// RedeemLimited redeems code for customer under the DMS API's rules: every
// one of limits (names of who is asking) gives a token of its failure
// budget before the attempt, in one step with the check, and an attempt
// that is not an invalid, expired, used or foreign code gets them back.
// While any of limits has none left, it is refused with an error
// RetryAfter recognises. The DMS API (limits: its API key and client
// address) and `mailgate connections redeem` through the control service
// (limits: the CLI and the customer) both redeem here.
func (a *Activation) RedeemLimited(ctx context.Context, customer, code, actor string, limits ...string) (connector.Connection, TestResult, error) {
	takes := make([]func(time.Time) (time.Duration, func()), len(limits))
	for i, k := range limits {
		takes[i] = a.fails.on(k)
	}
	wait, release := takeAll(a.now(), takes...)
	if wait > 0 {
		a.metrics.redeems.WithLabelValues("limited").Inc()
		return connector.Connection{}, TestResult{}, &rateLimitedError{retryAfter: wait}
	}
	c, res, err := a.Redeem(ctx, customer, code, actor)
	if isInvalidCode(err) {
		a.metrics.redeems.WithLabelValues("invalid").Inc()
	} else {
		release()
	}
	return c, res, err
}

// RetryAfter reports whether err refuses an attempt for too many failures,
// and how long the caller must wait.
func RetryAfter(err error) (time.Duration, bool) {
	var rl *rateLimitedError
	if errors.As(err, &rl) {
		return rl.retryAfter, true
	}
	return 0, false
}

// Redeem redeems a one-time code of customer and activates its
// connection, without a failure limit: the demo's button, for the user's
// own code. Everything else redeems through RedeemLimited.
func (a *Activation) Redeem(ctx context.Context, customer, code, actor string) (connector.Connection, TestResult, error) {
	id, err := a.deps.Codes.Redeem(ctx, customer, strings.TrimSpace(code))
	if err != nil {
		return connector.Connection{}, TestResult{}, fmt.Errorf("redeem: %w", err)
	}
	c, res, err := a.Activate(ctx, customer, id, actor)
	if err == nil {
		switch c.State {
		case connector.StateActive:
			a.metrics.redeems.WithLabelValues("active").Inc()
		case connector.StateFailing:
			a.metrics.redeems.WithLabelValues("failing").Inc()
		}
	}
	return c, res, err
}

// Activate tests a pending connection of customer and makes it active (test
// passed) or failing (with the reason). A connection that is not pending,
// or of another customer, is refused like an invalid code. One that left
// pending during the test (a token error that needs a person moved it to
// needs_consent, or somebody deleted it) is left as it is.
func (a *Activation) Activate(ctx context.Context, customer, id, actor string) (connector.Connection, TestResult, error) {
	c, err := a.deps.Connections.Get(ctx, id)
	if err != nil {
		return c, TestResult{}, fmt.Errorf("activate: get %s: %w", id, err)
	}
	if c.Customer != customer || c.State != connector.StatePending {
		// Codes already refuses other customers' codes; a connection that
		// moved on (deleted, or redeemed by another path) is no use either.
		return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s (state %s): %w", id, c.State, errInvalidCode)
	}
	if operatorApp(c) {
		// Through the operator's app a connection reaches the whole
		// tenant: only a tenant proven and bound to the customer.
		b, ok, err := a.deps.Tenants.TenantOwner(ctx, c.TenantID)
		if err != nil && !connector.IsKind(err, connector.Invalid) {
			return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s: tenant owner: %w", id, err)
		}
		if !ok || b.Customer != customer {
			a.log.WarnContext(ctx, "activation refused: tenant not bound to the customer", "connection_id", id, "customer", customer, "tenant", c.TenantID)
			return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s: tenant not bound to %s: %w", id, customer, errInvalidCode)
		}
	}
	res, terr := a.deps.Tester.Test(ctx, c)
	passed := testPassed(c, res, terr)
	c, err = a.deps.Connections.Update(ctx, id, func(c *connector.Connection) error {
		if c.State != connector.StatePending {
			return nil
		}
		if passed {
			c.State = connector.StateActive
			c.SetError("", connector.Other)
		} else {
			c.State = connector.StateFailing
			c.SetError(testFailure(res, terr), testKind(res, terr))
		}
		c.UpdatedBy, c.UpdatedAt = actor, a.now()
		return nil
	})
	if err != nil {
		return c, res, fmt.Errorf("activate: update %s: %w", id, err)
	}
	a.log.InfoContext(ctx, "connection activated", "connection_id", id, "customer", customer, "actor", actor, "state", c.State)
	if c.State == connector.StateActive {
		a.trigger(id)
	}
	return c, res, nil
}

// AppConnection is an app-only connection through the customer's own app
// registration, as `mailgate connections add-app` asks for it.
type AppConnection struct {
	Customer        string
	TenantID        string
	ClientID        string
	ClientSecret    []byte // sealed at once
	SecretExpiresAt time.Time
	Mailbox         string
	// The wizard's existing-mail and after-import choices; nil takes the
	// wizard's defaults.
	Backfill    *connector.Backfill
	PostProcess *connector.PostProcess
}

// AddApp creates the connection req describes and activates it at once:
// its connection test takes the place of a code, since whoever holds the
// app's secret needs no proof of the tenant.
func (a *Activation) AddApp(ctx context.Context, req AppConnection, actor string) (connector.Connection, TestResult, error) {
	if err := connector.ValidCustomer(req.Customer); err != nil {
		return connector.Connection{}, TestResult{}, err
	}
	backfill := connector.Backfill{Mode: connector.BackfillNew}
	if req.Backfill != nil {
		backfill = *req.Backfill
	}
	post := connector.PostProcess{Action: connector.PostMove, Folder: "Archiviert"}
	if req.PostProcess != nil {
		post = *req.PostProcess
	}
	if err := errors.Join(backfill.Validate(a.now()), post.Validate()); err != nil {
		return connector.Connection{}, TestResult{}, err
	}
	id := connector.NewID()
	sealed, err := a.deps.Sealer.SealFor(req.Customer, id, req.ClientSecret)
	if err != nil {
		return connector.Connection{}, TestResult{}, err
	}
	c, err := a.deps.Connections.Create(ctx, connector.Connection{
		ID:              id,
		Customer:        req.Customer,
		TenantID:        req.TenantID,
		Mailbox:         req.Mailbox,
		Folder:          "inbox",
		Mode:            connector.AppOnly,
		State:           connector.StatePending,
		ClientID:        req.ClientID,
		ClientSecret:    sealed,
		SecretExpiresAt: req.SecretExpiresAt,
		PostProcess:     post,
		Backfill:        backfill,
		CreatedBy:       actor,
		UpdatedBy:       actor,
	})
	if err != nil {
		return connector.Connection{}, TestResult{}, err
	}
	return a.Activate(ctx, c.Customer, c.ID, actor)
}

// CreatePending stores c as a pending connection and tests it; one that
// fails its test is deleted again, by actor. The access tokens of
// consents (a delegated sign-in's code exchange) serve the test.
func (a *Activation) CreatePending(ctx context.Context, c connector.Connection, actor string, consents ...connector.Consent) (Checked, error) {
	c, err := a.deps.Connections.Create(ctx, c)
	if err != nil {
		return Checked{}, fmt.Errorf("create connection: %w", err)
	}
	for _, cs := range consents {
		a.prime(c.ID, cs)
	}
	res, terr := a.deps.Tester.Test(ctx, c)
	ch := Checked{Connection: c, Test: res, Err: terr, Passed: testPassed(c, res, terr)}
	if !ch.Passed {
		log := a.log.With("connection_id", c.ID, "customer", c.Customer, "actor", actor)
		log.InfoContext(ctx, "connection test failed", "err", terr, "detail", res.Detail)
		if _, err := a.deps.Connections.Delete(ctx, c.ID, actor); err != nil {
			log.ErrorContext(ctx, "delete failed pending connection", "err", err)
		}
	}
	return ch, nil
}

// Renew gives connection c new credentials (apply), tests it with them,
// and stores them with the outcome: a connection that passes becomes
// active (paused and pending ones stay), one that fails keeps its state
// and the reason. The access tokens of consents serve the test. The
// renewal is audited as "reconnect" either way.
func (a *Activation) Renew(ctx context.Context, c connector.Connection, actor string, apply func(*connector.Connection), consents ...connector.Consent) (Checked, error) {
	for _, cs := range consents {
		a.prime(c.ID, cs)
	}
	from := c.State
	candidate := c
	apply(&candidate)
	res, terr := a.deps.Tester.Test(ctx, candidate)
	passed := testPassed(candidate, res, terr)
	c, err := a.deps.Connections.Update(ctx, c.ID, func(c *connector.Connection) error {
		apply(c)
		if passed {
			if c.State != connector.StatePaused && c.State != connector.StatePending {
				c.State = connector.StateActive
			}
			c.SetError("", connector.Other)
		} else {
			c.SetError(testFailure(res, terr), testKind(res, terr))
		}
		c.UpdatedBy, c.UpdatedAt = actor, a.now()
		return nil
	})
	if err != nil {
		return Checked{}, fmt.Errorf("reconnect: update %s: %w", c.ID, err)
	}
	a.audit(ctx, c, from, "reconnect", actor)
	if passed && c.State == connector.StateActive {
		a.trigger(c.ID)
	}
	return Checked{Connection: c, Test: res, Err: terr, Passed: passed}, nil
}

// Retest runs the connection test of a connection; a failing one that
// passes becomes active again, other states stay. A failed test is
// reported in the result's Detail, not as an error. A connection in
// needs_consent is not tested: it waits for a person to reconnect it, and
// Microsoft would only refuse again. The DMS API and `mailgate connections
// test` use it.
func (a *Activation) Retest(ctx context.Context, id, actor string) (connector.Connection, TestResult, error) {
	c, err := a.deps.Connections.Get(ctx, id)
	if err != nil {
		return c, TestResult{}, fmt.Errorf("test %s: %w", id, err)
	}
	var res TestResult
	var terr error
	if c.State == connector.StateNeedsConsent {
		terr = connector.E("portal: test", connector.NeedsConsent, errors.New("the connection waits for a person to reconnect it"))
	} else {
		res, terr = a.deps.Tester.Test(ctx, c)
	}
	if terr != nil {
		res.Detail = strings.TrimSpace(res.Detail + " " + testFailure(res, terr))
		a.log.InfoContext(ctx, "connection test failed", "connection_id", c.ID, "actor", actor, "err", terr)
	}
	if c.State == connector.StateFailing && testPassed(c, res, terr) {
		c, err = a.recover(ctx, c.ID, actor)
	}
	return c, res, err
}

func (a *Activation) recover(ctx context.Context, id, actor string) (connector.Connection, error) {
	c, err := a.deps.Connections.Update(ctx, id, func(c *connector.Connection) error {
		if c.State == connector.StateFailing {
			c.State, c.UpdatedBy, c.UpdatedAt = connector.StateActive, actor, a.now()
			c.SetError("", connector.Other)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("recover %s: %w", id, err)
	}
	a.trigger(id)
	return c, nil
}

// prime hands the access token of a code exchange to the token cache of
// the connection it is for (when the Tester is a TokenPrimer), so the
// connection test uses it instead of redeeming the new refresh token at
// once.
func (a *Activation) prime(connectionID string, consent connector.Consent) {
	if p, ok := a.deps.Tester.(TokenPrimer); ok && consent.Token != nil {
		p.Prime(connectionID, consent.Token)
	}
}

func (a *Activation) trigger(id string) {
	if a.deps.Trigger != nil {
		a.deps.Trigger.Trigger(id)
	}
}

// audit records an action that the store's change events do not cover.
func (a *Activation) audit(ctx context.Context, c connector.Connection, from connector.State, action, actor string) {
	if a.deps.Audit == nil {
		return
	}
	err := a.deps.Audit.ConnectionChanged(ctx, archive.ConnectionChanged{
		Customer: c.Customer, Connection: c.ID, Mailbox: c.Mailbox, From: string(from), To: string(c.State),
		Action: action, Actor: actor,
	})
	if err != nil {
		a.log.ErrorContext(ctx, "audit", "connection_id", c.ID, "action", action, "err", err)
	}
}

// testPassed: the account must read the mailbox, and move or mark mail
// unless nothing is to be done with processed mail.
func testPassed(c connector.Connection, res TestResult, err error) bool {
	if err != nil || !res.CanRead {
		return false
	}
	return res.CanWrite || c.PostProcess.Action == connector.PostNone
}

// testProblem is the plain-language key for a failed test.
func testProblem(res TestResult, err error) string {
	switch {
	case connector.IsKind(err, connector.NeedsConsent):
		return "test.needs_consent"
	case connector.IsKind(err, connector.AccessDenied), err == nil && !res.CanRead:
		return "test.no_access"
	case connector.IsKind(err, connector.NotFound):
		return "test.not_found"
	case err == nil && !res.CanWrite:
		return "test.no_write"
	case connector.IsKind(err, connector.Transient), connector.IsKind(err, connector.Throttled):
		return "test.transient"
	}
	return "test.other"
}

// testKind is the kind of a failed test's problem (see testProblem), stored
// with its LastError.
func testKind(res TestResult, err error) connector.Kind {
	switch testProblem(res, err) {
	case "test.needs_consent":
		return connector.NeedsConsent
	case "test.no_access", "test.no_write":
		return connector.AccessDenied
	case "test.not_found":
		return connector.NotFound
	case "test.transient":
		return connector.KindOf(err)
	}
	return connector.Other
}

// testFailure is the LastError text of a failed test (English, stored).
func testFailure(res TestResult, err error) string {
	msg := map[string]string{
		"test.needs_consent": "consent missing or expired: reconnect",
		"test.no_access":     "the account has no full access to the mailbox",
		"test.not_found":     "the mailbox was not found",
		"test.no_write":      "the account can read but not move or mark mail",
		"test.transient":     "Microsoft 365 was not reachable; try again",
		"test.other":         "connection test failed",
	}[testProblem(res, err)]
	if res.Detail != "" {
		msg += ": " + res.Detail
	}
	return msg
}
