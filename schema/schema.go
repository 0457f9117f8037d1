// Package schema embeds the JSON Schema of safeflow flow files, for editors
// and for `safeflow schema`.
package schema

import _ "embed"

// FlowJSON is the JSON Schema (draft 2020-12) of a flow file.
//
//go:embed flow.schema.json
var FlowJSON []byte
