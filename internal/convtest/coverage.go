package convtest

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/flows"
)

// Coverage is how much of one flow the tests ran through.
type Coverage struct {
	Flow *flows.Flow
	// Steps and Branches count what the tests entered and took, of all.
	Steps, StepsTotal       int
	Branches, BranchesTotal int
	// MissedSteps and MissedBranches are in file order.
	MissedSteps    []*flows.Step
	MissedBranches []flows.Edge
}

// Complete reports whether every step and branch was covered.
func (c *Coverage) Complete() bool {
	return c.Steps == c.StepsTotal && c.Branches == c.BranchesTotal
}

// String writes the coverage line, for example
// "coverage new-patient-intake: steps 14/16 (88%), branches 20/24 (83%)".
func (c *Coverage) String() string {
	return fmt.Sprintf("coverage %s: steps %d/%d (%s), branches %d/%d (%s)", c.Flow.ID,
		c.Steps, c.StepsTotal, percent(c.Steps, c.StepsTotal), c.Branches, c.BranchesTotal, percent(c.Branches, c.BranchesTotal))
}

// Missed lists what the tests did not reach, as "step x; branch a -> b
// (when ...)", or "" when nothing was missed.
func (c *Coverage) Missed() string {
	var parts []string
	for _, s := range c.MissedSteps {
		parts = append(parts, "step "+s.ID)
	}
	for _, e := range c.MissedBranches {
		parts = append(parts, "branch "+BranchName(e))
	}
	return strings.Join(parts, "; ")
}

// BranchName describes an edge as "a -> b (when ...)", "(default)", "(on
// fail)" or "(on timeout)".
func BranchName(e flows.Edge) string {
	label := e.Label()
	switch {
	case e.Kind == flows.EdgeNext && e.Route.When != nil:
		label = "when " + label
	case label == "":
		label = "default"
	}
	return fmt.Sprintf("%s -> %s (%s)", e.From.ID, e.To.ID, label)
}

// percent rounds to the nearest whole percent, but never shows 100% for
// anything short of all.
func percent(n, total int) string {
	if total == 0 {
		return "100%"
	}
	p := (n*200 + total) / (2 * total)
	if p == 100 && n < total {
		p = 99
	}
	return fmt.Sprintf("%d%%", p)
}

// edgeKey identifies an edge of a flow: a `next` route by its entry, an
// on_fail or on_timeout edge by its step and kind.
type edgeKey struct {
	from  *flows.Step
	kind  flows.EdgeKind
	route *flows.Route
}

func keyOf(e *flows.Edge) edgeKey {
	k := edgeKey{from: e.From, kind: e.Kind}
	if e.Kind == flows.EdgeNext {
		k.route = e.Route
	}
	return k
}

// coverage records what every test entered and took, across the suite.
type coverage struct {
	mu    sync.Mutex
	flows []*flows.Flow // the flows under test, by id
	steps map[*flows.Step]bool
	edges map[edgeKey]bool
}

func newCoverage(s *Suite) *coverage {
	c := &coverage{steps: map[*flows.Step]bool{}, edges: map[edgeKey]bool{}}
	for _, f := range s.Files {
		if fl := s.FlowSet(f).Flow(f.Flow); fl != nil && !slices.Contains(c.flows, fl) {
			c.flows = append(c.flows, fl)
		}
	}
	slices.SortFunc(c.flows, func(a, b *flows.Flow) int {
		return strings.Compare(a.ID+"\x00"+a.File, b.ID+"\x00"+b.File)
	})
	return c
}

// observe is the engine's observer: it marks a step entered and the edge
// that led there taken.
func (c *coverage) observe(_ *engine.Conversation, step *flows.Step, edge *flows.Edge) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.steps[step] = true
	if edge != nil {
		c.edges[keyOf(edge)] = true
	}
}

func (c *coverage) report() []*Coverage {
	var out []*Coverage
	for _, fl := range c.flows {
		cv := &Coverage{Flow: fl, StepsTotal: len(fl.Steps)}
		for _, s := range fl.Steps {
			if c.steps[s] {
				cv.Steps++
			} else {
				cv.MissedSteps = append(cv.MissedSteps, s)
			}
			for _, e := range fl.Edges(s) {
				cv.BranchesTotal++
				if c.edges[keyOf(&e)] {
					cv.Branches++
				} else {
					cv.MissedBranches = append(cv.MissedBranches, e)
				}
			}
		}
		out = append(out, cv)
	}
	return out
}
