package portal

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3.1 description of the DMS API. The contract tests
// validate the handlers' real requests and responses against it, so it
// cannot drift from the code.
//
//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of the DMS API, as served at
// /api/v1/openapi.json.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// openAPIDoc serves the OpenAPI document without authentication: it holds
// no secret and a client generator needs it before it has a key.
func (s *Server) openAPIDoc(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPI)
}
