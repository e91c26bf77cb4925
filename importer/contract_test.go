package importer

import (
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/mailboxtest"
)

// TestFakeKeepsTheMailboxContract runs the delta paging contract against
// the in-memory mailbox the importer's tests use, so that it cannot drift
// from the simulator (which runs the same contract in connector/graph).
func TestFakeKeepsTheMailboxContract(t *testing.T) {
	mailboxtest.Run(t, func(t *testing.T) mailboxtest.Fake {
		f := newFakeMailbox()
		f.pageSize = 4
		return mailboxtest.Fake{
			Delta:    f.Delta,
			Folder:   "inbox",
			PageSize: f.pageSize,
			Deliver: func(t *testing.T, msgID string, received time.Time) string {
				return f.deliver("inbox", connector.Message{
					From: "lieferant@example.com", Subject: "Rechnung " + msgID,
					InternetMessageID: msgID, ReceivedAt: received,
				})
			},
			Remove:    func(t *testing.T, id string) { f.personMove(id, "archive") },
			ResetSync: func(t *testing.T) { f.resetSync() },
		}
	})
}
