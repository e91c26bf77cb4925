package portal_test

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/portal"
)

// The wiring cmd/mailgate does: the connector's store, codes, sealer and
// identity satisfy the portal's interfaces directly; the connection test,
// the importer's status, the audit publisher and the poll trigger are
// adapted by the caller.
func ExampleNew() {
	ctx := context.Background()
	var (
		js       jetstream.JetStream // from the embedded or external NATS
		store    *connector.Store
		codes    *connector.Codes
		sealer   *connector.Sealer
		identity *connector.Identity
		tester   portal.Tester // adapts the Graph client's connection test
	)
	reg := prometheus.NewRegistry()
	srv, err := portal.New(ctx, js, portal.Deps{
		Identity: identity, Connections: store, Tenants: store, Codes: codes, Sealer: sealer, Tester: tester,
	}, portal.Config{
		PublicURL: "https://mailgate.example.com", ConnectGroup: "mailbox-connect",
		Logger: slog.Default(), Registerer: reg,
	})
	if err != nil {
		return
	}
	_ = http.ListenAndServe("127.0.0.1:8080", srv.Handler())
}
