package flows

// EdgeKind says why the flow may move along an edge.
type EdgeKind int

const (
	// EdgeNext is a `next` route.
	EdgeNext EdgeKind = iota
	// EdgeFail is taken when the answer fails every attempt.
	EdgeFail
	// EdgeTimeout is taken when the question times out.
	EdgeTimeout
)

// Edge is one possible move from a step to another.
type Edge struct {
	From, To *Step
	Kind     EdgeKind
	// Route is the `next` entry for EdgeNext edges.
	Route *Route
}

// Label describes the edge for diagrams: the guard, "default", "on fail" or
// "on timeout".
func (e Edge) Label() string {
	switch e.Kind {
	case EdgeFail:
		return "on fail"
	case EdgeTimeout:
		return "on timeout"
	}
	if e.Route.When != nil {
		return e.Route.When.Source
	}
	return ""
}

// Edges lists the moves out of a step whose targets exist, in order.
func (f *Flow) Edges(s *Step) []Edge {
	var out []Edge
	for _, r := range s.Next {
		if t := f.byID[r.Goto]; t != nil {
			out = append(out, Edge{From: s, To: t, Kind: EdgeNext, Route: r})
		}
	}
	if s.Ask != nil {
		if t := f.byID[s.Ask.OnFail]; t != nil {
			out = append(out, Edge{From: s, To: t, Kind: EdgeFail})
		}
		if t := f.byID[s.Ask.OnTimeout]; t != nil {
			out = append(out, Edge{From: s, To: t, Kind: EdgeTimeout})
		}
	}
	return out
}
