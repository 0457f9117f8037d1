package store_test

import (
	"testing"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/internal/audit"
)

// The engine names its events itself (it imports nothing of the audit
// package); where an action has a name in both, the audit log must see one
// name, or exports and filters would split one action in two.
func TestEngineEventsUseAuditNames(t *testing.T) {
	for _, tc := range []struct{ Label, Engine, Audit string }{
		{"message in", engine.EventMessageIn, audit.MessageIn},
		{"message out", engine.EventMessageOut, audit.MessageOut},
		{"step change", engine.EventStepChange, audit.StepChange},
		{"link issued", engine.EventLinkIssued, audit.LinkIssued},
		{"handoff", engine.EventHandoff, audit.Handoff},
		{"switch to secure", engine.EventSwitchSecure, audit.SwitchSecure},
	} {
		if tc.Engine != tc.Audit {
			t.Errorf("%s: the engine records %q, the audit log calls it %q", tc.Label, tc.Engine, tc.Audit)
		}
	}
}
