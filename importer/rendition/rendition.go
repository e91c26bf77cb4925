// Package rendition renders an XML-only e-invoice (XRechnung or other UBL
// and CII invoices) as a PDF a person reads, in the manner of KoSIT's
// XRechnung visualisation.
package rendition

import (
	"context"
	"errors"
)

// ContentType is the media type of a rendition.
const ContentType = "application/pdf"

// ErrNotImplemented is what the placeholder answers until the renderer lands.
var ErrNotImplemented = errors.New("rendition: not implemented yet")

// PDF renders the e-invoice XML as a PDF. ctx bounds its time.
func PDF(ctx context.Context, xml []byte) ([]byte, error) { return nil, ErrNotImplemented }
