package graph

import (
	"context"
	"errors"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mailgate/mailgate/connector"
)

// CountMessages tells how many messages a backfill over folder covers:
// with since zero the folder's totalItemCount (GET …/mailFolders/{folder}
// ?$select=totalItemCount), otherwise the number of messages received at
// or after since (GET …/mailFolders/{folder}/messages?$filter=
// receivedDateTime ge …&$count=true&$top=1&$select=id, read from
// @odata.count). Outlook messages answer $count without the
// ConsistencyLevel header directory objects need. One request either way.
func (m *Mailbox) CountMessages(ctx context.Context, folder string, since time.Time) (int, error) {
	op := m.op("count messages")
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return 0, err
	}
	if folder == "" {
		return 0, connector.E(op, connector.Invalid, errors.New("folder is required"))
	}
	b := m.user().MailFolders().ByMailFolderId(folder)
	if since.IsZero() {
		f, err := b.Get(ctx, &users.ItemMailFoldersMailFolderItemRequestBuilderGetRequestConfiguration{
			Headers:         m.headers(0),
			QueryParameters: &users.ItemMailFoldersMailFolderItemRequestBuilderGetQueryParameters{Select: []string{"totalItemCount"}},
		})
		if err != nil {
			return 0, classify(op, err)
		}
		if f == nil || f.GetTotalItemCount() == nil {
			return 0, connector.E(op, connector.Transient, errors.New("folder without totalItemCount"))
		}
		return int(*f.GetTotalItemCount()), nil
	}
	filter := "receivedDateTime ge " + since.UTC().Format(time.RFC3339)
	count, top := true, int32(1)
	resp, err := b.Messages().Get(ctx, &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{
		Headers: m.headers(0),
		QueryParameters: &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{
			Filter: &filter, Count: &count, Top: &top, Select: []string{"id"},
		},
	})
	if err != nil {
		return 0, classify(op, err)
	}
	if resp == nil || resp.GetOdataCount() == nil {
		return 0, connector.E(op, connector.Transient, errors.New("messages without @odata.count"))
	}
	return int(*resp.GetOdataCount()), nil
}
