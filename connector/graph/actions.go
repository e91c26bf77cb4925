package graph

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/mailgate/mailgate/connector"
)

// DefaultFolder is the post-processing folder the connection test ensures.
const DefaultFolder = "Archiviert"

// Move moves a message to folderID and returns its id there (unchanged with
// immutable ids, which every request asks for).
func (m *Mailbox) Move(ctx context.Context, messageID, folderID string) (string, error) {
	op := m.op("move")
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return "", err
	}
	body := users.NewItemMessagesItemMovePostRequestBody()
	body.SetDestinationId(&folderID)
	moved, err := m.user().Messages().ByMessageId(messageID).Move().Post(ctx, body,
		&users.ItemMessagesItemMoveRequestBuilderPostRequestConfiguration{Headers: m.headers(0)})
	if err != nil {
		return "", classify(op, err)
	}
	if moved == nil || deref(moved.GetId()) == "" {
		return "", connector.E(op, connector.Transient, errors.New("move response without id"))
	}
	return *moved.GetId(), nil
}

// MarkRead sets isRead on a message.
func (m *Mailbox) MarkRead(ctx context.Context, messageID string) error {
	patch := models.NewMessage()
	read := true
	patch.SetIsRead(&read)
	return m.patch(ctx, m.op("mark read"), messageID, patch)
}

// AddCategory adds category to a message whose current categories are
// existing (Graph replaces the whole list). Nothing is sent when the message
// has it already.
func (m *Mailbox) AddCategory(ctx context.Context, messageID, category string, existing []string) error {
	op := m.op("add category")
	if category == "" {
		return connector.E(op, connector.Invalid, errors.New("empty category"))
	}
	if slices.ContainsFunc(existing, func(c string) bool { return strings.EqualFold(c, category) }) {
		return nil
	}
	patch := models.NewMessage()
	patch.SetCategories(append(slices.Clip(existing), category))
	return m.patch(ctx, op, messageID, patch)
}

func (m *Mailbox) patch(ctx context.Context, op, messageID string, patch models.Messageable) error {
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return err
	}
	_, err = m.user().Messages().ByMessageId(messageID).Patch(ctx, patch,
		&users.ItemMessagesMessageItemRequestBuilderPatchRequestConfiguration{Headers: m.headers(0)})
	return classify(op, err)
}

// EnsureFolder returns the id of the folder called name directly below the
// mailbox's root (msgfolderroot), creating it when missing. A concurrent
// create by someone else (409) is resolved by looking it up again.
func (m *Mailbox) EnsureFolder(ctx context.Context, name string) (string, error) {
	op := m.op("ensure folder")
	if name == "" {
		return "", connector.E(op, connector.Invalid, errors.New("empty folder name"))
	}
	ctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		return "", err
	}
	if id, err := m.findFolder(ctx, name); err != nil || id != "" {
		return id, classify(op, err)
	}
	folder := models.NewMailFolder()
	folder.SetDisplayName(&name)
	created, err := m.user().MailFolders().ByMailFolderId("msgfolderroot").ChildFolders().Post(ctx, folder,
		&users.ItemMailFoldersItemChildFoldersRequestBuilderPostRequestConfiguration{Headers: m.headers(0)})
	if err != nil {
		cerr := classify(op, err)
		var ce *connector.Error
		if errors.As(cerr, &ce) && (ce.Code == "ErrorFolderExists" || isConflict(ce)) {
			id, err := m.findFolder(ctx, name)
			if err != nil {
				return "", classify(op, err)
			}
			if id != "" {
				return id, nil
			}
		}
		return "", cerr
	}
	if created == nil || deref(created.GetId()) == "" {
		return "", connector.E(op, connector.Transient, errors.New("created folder without id"))
	}
	return *created.GetId(), nil
}

func isConflict(e *connector.Error) bool {
	var ae *apiError
	return errors.As(e, &ae) && ae.Status == 409
}

// findFolder returns the id of the child of msgfolderroot named name, or "".
func (m *Mailbox) findFolder(ctx context.Context, name string) (string, error) {
	filter := "displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"
	resp, err := m.user().MailFolders().ByMailFolderId("msgfolderroot").ChildFolders().Get(ctx,
		&users.ItemMailFoldersItemChildFoldersRequestBuilderGetRequestConfiguration{
			Headers: m.headers(0),
			QueryParameters: &users.ItemMailFoldersItemChildFoldersRequestBuilderGetQueryParameters{
				Filter: &filter,
				Select: []string{"id", "displayName"},
			},
		})
	if err != nil {
		return "", err
	}
	if resp == nil {
		return "", errors.New("empty folder list")
	}
	for _, f := range resp.GetValue() {
		// The filter is Graph's, the check is ours (case-insensitive, as
		// Exchange treats folder names).
		if f != nil && strings.EqualFold(deref(f.GetDisplayName()), name) {
			return deref(f.GetId()), nil
		}
	}
	return "", nil
}

// TestResult is the outcome of a connection test.
type TestResult struct {
	Mailbox  string
	CanRead  bool
	CanWrite bool
	Folder   string // display name of the folder read (the inbox)
	Messages int    // messages in that folder
	Detail   string // what failed, for people
}

// Test proves that the mailbox can be read (the inbox and one message) and
// written without touching mail (it ensures the post-processing folder
// DefaultFolder exists). The result is filled as far as the test got; the
// error, if any, is the first failure, classified.
func (m *Mailbox) Test(ctx context.Context) (TestResult, error) {
	res := TestResult{Mailbox: m.address}
	op := m.op("test")
	rctx, cancel, err := m.begin(ctx, op)
	defer cancel()
	if err != nil {
		res.Detail = err.Error()
		return res, err
	}
	inbox := m.user().MailFolders().ByMailFolderId("inbox")
	f, err := inbox.Get(rctx, &users.ItemMailFoldersMailFolderItemRequestBuilderGetRequestConfiguration{
		Headers: m.headers(0),
		QueryParameters: &users.ItemMailFoldersMailFolderItemRequestBuilderGetQueryParameters{
			Select: []string{"id", "displayName", "totalItemCount"},
		},
	})
	if err == nil && f != nil {
		res.Folder = deref(f.GetDisplayName())
		res.Messages = int(deref(f.GetTotalItemCount()))
		top := int32(1)
		_, err = inbox.Messages().Get(rctx, &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{
			Headers: m.headers(0),
			QueryParameters: &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{
				Top:    &top,
				Select: []string{"id", "internetMessageId"},
			},
		})
	}
	if err != nil {
		err = classify(op, err)
		res.Detail = "read: " + err.Error()
		return res, err
	}
	res.CanRead = true
	if _, err := m.EnsureFolder(ctx, DefaultFolder); err != nil {
		res.Detail = "write: " + err.Error()
		return res, err
	}
	res.CanWrite = true
	return res, nil
}
