package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"

	"github.com/mailgate/mailgate/archive"
)

// Duplicate invoices. The content index (sha.<customer>.<sha256>) knows
// the same file; an invoice arrives again as another file too: an
// XRechnung and its ZUGFeRD twin, a reminder with the invoice attached
// once more. Such a file is imported (it is a different document) and
// flagged with the first document that carried the same seller's
// invoice number, through the index inv.<customer>.<hash>.

// invoiceKey is the ledger key of an invoice: the seller (VAT id, else
// name), the invoice number and the year of its issue date (BT-2; a
// supplier may start its numbers again each year), normalised, hashed so
// any characters fit a key. ok is false when the invoice lacks a number
// or a seller; one without an issue date is keyed by the other two.
func invoiceKey(customer string, inv *archive.Invoice) (key string, ok bool) {
	if inv == nil {
		return "", false
	}
	number := strings.TrimSpace(inv.Number)
	seller := "vat:" + strings.ToUpper(strings.Map(dropSpace, inv.Seller.VATID))
	if inv.Seller.VATID == "" {
		seller = "name:" + strings.ToLower(strings.Join(strings.Fields(inv.Seller.Name), " "))
	}
	if number == "" || seller == "name:" {
		return "", false
	}
	year := ""
	if d := strings.TrimSpace(inv.IssueDate); len(d) >= 4 {
		year = d[:4]
	}
	sum := sha256.Sum256([]byte(seller + "\x00" + number + "\x00" + year))
	return "inv." + kvToken(customer) + "." + hex.EncodeToString(sum[:]), true
}

func dropSpace(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return r
}

// flagDuplicateInvoice claims the invoice for document id and, when an
// earlier document of the customer holds it, sets DuplicateInvoiceOf.
// The claim is made before the event is published, so the event can say
// it; a replay of the same document finds its own claim and no flag.
func (p *pass) flagDuplicateInvoice(ctx context.Context, id string, inv *archive.Invoice) error {
	key, ok := invoiceKey(p.conn.Customer, inv)
	if !ok {
		return nil
	}
	owner, err := p.im.ledger.claim(ctx, key, id)
	if err != nil {
		return err
	}
	if owner != id {
		inv.DuplicateInvoiceOf = owner
	}
	return nil
}

// withInvoice adds an e-invoice's number, seller and gross amount to a
// history entry, for the portal's document list.
func (h HistoryEntry) withInvoice(inv *archive.Invoice) HistoryEntry {
	if inv == nil {
		return h
	}
	h.InvoiceNumber, h.Seller, h.Gross, h.Currency = inv.Number, inv.Seller.Name, inv.Totals.Gross, inv.Currency
	return h
}
