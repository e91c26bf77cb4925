package archive

import _ "embed"

// asyncAPI is the AsyncAPI 3 description of the events: subjects, the
// CloudEvents envelope and the JSON Schemas of the data. The contract
// tests validate real events against it (archivetest.Contract).
//
//go:embed asyncapi.yaml
var asyncAPI []byte

// AsyncAPI returns the AsyncAPI 3 document of the archive events (YAML).
func AsyncAPI() []byte { return append([]byte(nil), asyncAPI...) }
