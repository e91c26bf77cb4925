package graph_test

import (
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/connector/mailboxtest"
)

// TestSimulatorKeepsTheMailboxContract runs the delta paging contract
// against the simulator, through the client the importer uses.
func TestSimulatorKeepsTheMailboxContract(t *testing.T) {
	mailboxtest.Run(t, func(t *testing.T) mailboxtest.Fake {
		const pageSize = 4
		e := newSim(t, graph.Config{PageSize: pageSize})
		mb := e.mailbox(graphtest.DefaultMailbox)
		return mailboxtest.Fake{
			Delta:    mb.Delta,
			Folder:   "inbox",
			PageSize: pageSize,
			Deliver: func(t *testing.T, msgID string, received time.Time) string {
				return e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
					From: "lieferant@example.com", Subject: "Rechnung " + msgID,
					InternetMessageID: msgID, ReceivedAt: received,
				})
			},
			Remove: func(t *testing.T, id string) {
				if err := e.s.DeleteMessage(graphtest.DefaultMailbox, id); err != nil {
					t.Fatal(err)
				}
			},
			ResetSync: func(t *testing.T) { e.s.ResetDelta(graphtest.DefaultMailbox) },
		}
	})
}
