package engine_test

import (
	"slices"
	"testing"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

// TestEveryInputTypeHasParser fails when a flow may ask for an input type
// that the engine cannot parse, or a parser serves a type no flow can use.
func TestEveryInputTypeHasParser(t *testing.T) {
	types := flows.InputTypes()
	if len(types) == 0 {
		t.Fatal("flows.InputTypes() is empty")
	}
	for _, typ := range types {
		if p, ok := answer.Lookup(typ); !ok || p == nil {
			t.Errorf("input type %q has no parser in engine/answer", typ)
		}
	}
	for _, kind := range answer.Kinds() {
		if !slices.Contains(types, kind) {
			t.Errorf("engine/answer parses %q, which is not an input type of flows", kind)
		}
	}
}
