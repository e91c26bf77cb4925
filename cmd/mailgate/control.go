package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/portal"
)

// The control service lets CLI commands ask a running mailgate for what
// needs Microsoft: redeeming a code and testing a connection need tokens and
// the Graph client, which only `serve` holds. It is a NATS micro service, so
// with several replicas any one of them answers. Its subjects stay outside
// "mailgate.>", which the MAILGATE stream captures: a request there would be
// answered by JetStream's publish acknowledgement.
const controlSubject = "mailgatectl"

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

// control sends one request to the control service and decodes its answer.
func control(ctx context.Context, nc *nats.Conn, op string, req controlRequest, res *controlResult) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msg, err := nc.RequestWithContext(ctx, controlSubject+"."+op, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return errors.New("no running mailgate portal answered (start `mailgate serve` with role portal or all, or point MAILGATE_NATS_URL at its NATS)")
	}
	if err != nil {
		return fmt.Errorf("control %s: %w", op, err)
	}
	if err := json.Unmarshal(msg.Data, res); err != nil {
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
func startControl(ctx context.Context, nc *nats.Conn, w *Wiring, log *slog.Logger) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "mailgate-control",
		Version:     "1.0.0",
		Description: "redeem codes and test connections for the mailgate CLI",
	})
	if err != nil {
		return nil, fmt.Errorf("control service: %w", err)
	}
	grp := svc.AddGroup(controlSubject)
	handle := func(op string, fn func(context.Context, controlRequest) (controlResult, error)) error {
		return grp.AddEndpoint(op, micro.HandlerFunc(func(r micro.Request) {
			var req controlRequest
			var res controlResult
			err := json.Unmarshal(r.Data(), &req)
			if err == nil {
				res, err = fn(ctx, req)
			}
			if err != nil {
				log.Warn("control request failed", "op", op, "err", err)
				res.Error = err.Error()
			}
			res.Connection.RefreshToken, res.Connection.ClientSecret = nil, nil
			_ = r.RespondJSON(res)
		}))
	}
	result := func(c connector.Connection, t portal.TestResult, err error) (controlResult, error) {
		return controlResult{Connection: c, Test: t}, err
	}
	errs := []error{
		handle("redeem", func(ctx context.Context, req controlRequest) (controlResult, error) {
			return result(w.Portal.Redeem(ctx, req.Customer, req.Code, req.Actor))
		}),
		handle("test", func(ctx context.Context, req controlRequest) (controlResult, error) {
			return result(w.Portal.Retest(ctx, req.ConnectionID, req.Actor))
		}),
		handle("add-app", func(ctx context.Context, req controlRequest) (controlResult, error) {
			if err := connector.ValidCustomer(req.Customer); err != nil {
				return controlResult{}, err
			}
			backfill := connector.Backfill{Mode: connector.BackfillNew}
			if req.Backfill != nil {
				backfill = *req.Backfill
			}
			post := connector.PostProcess{Action: connector.PostMove, Folder: "Archiviert"}
			if req.PostProcess != nil {
				post = *req.PostProcess
			}
			if err := errors.Join(backfill.Validate(time.Now()), post.Validate()); err != nil {
				return controlResult{}, err
			}
			sealed, err := w.Sealer.Seal([]byte(req.ClientSecret))
			if err != nil {
				return controlResult{}, err
			}
			c, err := w.Connections.Create(ctx, connector.Connection{
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
				CreatedBy:       req.Actor,
				UpdatedBy:       req.Actor,
			})
			if err != nil {
				return controlResult{}, err
			}
			return result(w.Portal.Activate(ctx, c.Customer, c.ID, req.Actor))
		}),
	}
	if err := errors.Join(errs...); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("control service: %w", err)
	}
	return svc, nil
}
