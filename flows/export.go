package flows

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// summaryLen caps the question text shown in a diagram node, so that a long
// prompt does not stretch the whole picture; the step id says the rest.
const summaryLen = 40

// sensitiveMark is put before the id of a sensitive step, so that the
// marking survives renderers that drop colours (and black-and-white print).
const sensitiveMark = "🔒"

// Colours of the diagram, shared by both syntaxes so the pictures match.
const (
	sensitiveFill   = "#fde2e2"
	sensitiveStroke = "#c0392b"
	endFill         = "#e6e6e6"
	endStroke       = "#555555"
	keywordFill     = "#fff7d6"
	keywordStroke   = "#b08d00"
)

type nodeKind int

const (
	nodeEntry nodeKind = iota
	nodeStep
	nodeKeyword
)

// node is one box of a diagram, before it is written in a syntax.
type node struct {
	kind nodeKind
	// name is the step id or the keyword word; empty for the entry.
	name string
	// lines are the label's lines, unescaped.
	lines     []string
	sensitive bool
	end       bool
	// index is the step's or keyword's position in the file.
	index int
}

// arrow is one edge of a diagram.
type arrow struct {
	from, to *node
	label    string
	dashed   bool
}

// diagram is a flow reduced to boxes and arrows, in file order, so that the
// Mermaid and DOT writers draw exactly the same picture.
type diagram struct {
	title  string
	nodes  []*node
	arrows []arrow
}

// newDiagram builds the diagram of a flow. Routes whose target does not
// exist are left out: such a flow has errors, and is drawn as far as it can be.
func newDiagram(f *Flow) *diagram {
	d := &diagram{title: oneLine(f.Title)}
	if d.title == "" {
		d.title = f.ID
	}
	steps := make(map[*Step]*node, len(f.Steps))
	for _, s := range f.Steps {
		n := &node{kind: nodeStep, name: s.ID, index: s.Index, sensitive: s.Sensitive, end: s.End}
		head := s.ID
		if s.Sensitive {
			head = sensitiveMark + " " + head
		}
		n.lines = []string{head}
		if sum := f.stepSummary(s); sum != "" {
			n.lines = append(n.lines, sum)
		}
		steps[s] = n
	}
	if start := f.StartStep(); start != nil {
		entry := &node{kind: nodeEntry, lines: []string{"start"}}
		d.nodes = append(d.nodes, entry)
		d.arrows = append(d.arrows, arrow{from: entry, to: steps[start], label: strings.Join(f.Trigger.Keywords, ", ")})
	}
	for _, s := range f.Steps {
		d.nodes = append(d.nodes, steps[s])
	}
	for _, s := range f.Steps {
		guarded := slices.ContainsFunc(s.Next, func(r *Route) bool { return r.When != nil })
		for _, e := range f.Edges(s) {
			label := strings.TrimSpace(e.Label())
			if e.Kind == EdgeNext && e.Route.When == nil && guarded {
				label = "otherwise"
			}
			d.arrows = append(d.arrows, arrow{from: steps[e.From], to: steps[e.To], label: label})
		}
	}
	for i, k := range f.Keywords {
		n := &node{kind: nodeKeyword, name: k.Word, index: i, lines: []string{"keyword " + k.Word}}
		target := f.Step(k.Goto)
		if target == nil {
			// A keyword that jumps nowhere still acts; say how.
			if sum := keywordSummary(k); sum != "" {
				n.lines = append(n.lines, sum)
			}
		}
		d.nodes = append(d.nodes, n)
		if target != nil {
			d.arrows = append(d.arrows, arrow{from: n, to: steps[target], dashed: true})
		}
	}
	return d
}

// stepSummary says in a few words what a step does: the start of its
// question, or what kind of pause or action it is.
func (f *Flow) stepSummary(s *Step) string {
	switch {
	case s.Ask != nil:
		if t := f.defaultText(s.Ask.Prompt); t != "" {
			return truncate(t, summaryLen)
		}
		return "ask " + s.Ask.Type
	case s.Handoff != "":
		return "handoff: " + s.Handoff
	case s.Wait > 0:
		return "wait " + shortDuration(s.Wait)
	case s.End:
		return "end"
	case len(s.Say) > 0:
		return "say"
	case len(s.Set) > 0:
		vars := make([]string, len(s.Set))
		for i, a := range s.Set {
			vars[i] = a.Var
		}
		return truncate("set "+strings.Join(vars, ", "), summaryLen)
	}
	return ""
}

func keywordSummary(k *Keyword) string {
	switch {
	case k.Handoff != "":
		return "handoff: " + k.Handoff
	case k.End:
		return "end"
	case len(k.Say) > 0:
		return "say"
	}
	return ""
}

// defaultText returns a message's text in the flow's default language, or
// its single-language text, or failing both the text of the first language
// in alphabetical order (so the choice does not depend on map order).
func (f *Flow) defaultText(m *Message) string {
	if m == nil || len(m.Text) == 0 {
		return ""
	}
	t := m.Text[f.Language]
	if t == nil {
		t = m.Text[""]
	}
	if t == nil {
		langs := make([]string, 0, len(m.Text))
		for l := range m.Text {
			langs = append(langs, l)
		}
		slices.Sort(langs)
		t = m.Text[langs[0]]
	}
	return oneLine(t.Source)
}

// oneLine collapses runs of white space, newlines included, to one space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// truncate shortens s to at most n runes, ending with an ellipsis when cut.
// It cuts at a space when one is in the second half, so words stay whole.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	cut := string(r[:n-1])
	if r[n-1] != ' ' {
		if i := strings.LastIndexByte(cut, ' '); i >= len(cut)/2 {
			cut = cut[:i]
		}
	}
	return strings.TrimRight(cut, " ") + "…"
}

// shortDuration writes a duration as a clinic would: 2h, 1h30m, 2d.
func shortDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Mermaid returns the flow as a Mermaid flowchart, for Markdown pages and
// code review. Steps are boxes labelled with their id and a summary;
// sensitive steps are hexagons of class `sensitive` with a lock; end steps
// are rounded, of class `terminal`; guards label the arrows; keyword jumps
// are dashed. The output depends only on the flow, in file order.
func (f *Flow) Mermaid() string {
	d := newDiagram(f)
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	fmt.Fprintf(&b, "    %%%% %s\n", d.title)
	for _, n := range d.nodes {
		open, close := mermaidShape(n)
		fmt.Fprintf(&b, "    %s%s\"%s\"%s\n", mermaidID(n), open, mermaidLabel(n.lines...), close)
	}
	for _, a := range d.arrows {
		link := "-->"
		if a.dashed {
			link = "-.->"
		}
		if a.label != "" {
			fmt.Fprintf(&b, "    %s %s|\"%s\"| %s\n", mermaidID(a.from), link, mermaidLabel(strings.Split(a.label, "\n")...), mermaidID(a.to))
		} else {
			fmt.Fprintf(&b, "    %s %s %s\n", mermaidID(a.from), link, mermaidID(a.to))
		}
	}
	fmt.Fprintf(&b, "    classDef sensitive fill:%s,stroke:%s,stroke-width:3px,color:#000\n", sensitiveFill, sensitiveStroke)
	fmt.Fprintf(&b, "    classDef terminal fill:%s,stroke:%s,stroke-width:2px,color:#000\n", endFill, endStroke)
	fmt.Fprintf(&b, "    classDef keyword fill:%s,stroke:%s,stroke-dasharray:4 3,color:#000\n", keywordFill, keywordStroke)
	for _, n := range d.nodes {
		// A sensitive end step gets terminal first: Mermaid applies a node's
		// classes in order, and the sensitive colours must win.
		if n.end {
			fmt.Fprintf(&b, "    class %s terminal\n", mermaidID(n))
		}
		if n.sensitive {
			fmt.Fprintf(&b, "    class %s sensitive\n", mermaidID(n))
		}
		if n.kind == nodeKeyword {
			fmt.Fprintf(&b, "    class %s keyword\n", mermaidID(n))
		}
	}
	return b.String()
}

// mermaidID names a node by its position, not its step id: Mermaid treats
// words such as `end`, `graph` or `style` as syntax, and ids with dashes or
// starting with o or x can be misread as arrow heads.
func mermaidID(n *node) string {
	switch n.kind {
	case nodeStep:
		return fmt.Sprintf("s%d", n.index)
	case nodeKeyword:
		return fmt.Sprintf("k%d", n.index)
	}
	return "entry"
}

func mermaidShape(n *node) (open, close string) {
	switch {
	case n.kind == nodeEntry:
		return "((", "))"
	case n.kind == nodeKeyword:
		return ">", "]"
	case n.sensitive:
		return "{{", "}}"
	case n.end:
		return "([", "])"
	}
	return "[", "]"
}

// mermaidEscaper turns the characters that end or change a quoted Mermaid
// label into entity codes, which Mermaid renders as the characters
// themselves. # comes first in meaning: a literal # would start an entity.
var mermaidEscaper = strings.NewReplacer(
	"#", "#35;",
	`"`, "#quot;",
	"<", "#lt;",
	">", "#gt;",
	"&", "#amp;",
	"|", "#124;",
	"`", "#96;",
	"{", "#123;",
	"}", "#125;",
	"\r", "",
)

// mermaidLabel escapes each line and joins them with <br/>, the line break
// of Mermaid's HTML labels.
func mermaidLabel(lines ...string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = mermaidEscaper.Replace(l)
	}
	return strings.Join(out, "<br/>")
}

// DOT returns the flow as a Graphviz digraph (render it with
// `dot -Tsvg` or `dot -Tpng`). It draws the same picture as Mermaid:
// sensitive steps are filled hexagons with a lock (as in Mermaid), end steps have a double
// border, guards label the edges and keyword jumps are dashed. Node ids are
// the step ids; the start point and keywords use ids in parentheses, which
// no step id can hold.
func (f *Flow) DOT() string {
	d := newDiagram(f)
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(f.ID))
	fmt.Fprintf(&b, "\tgraph [label=%s, labelloc=t, fontname=\"Helvetica\", fontsize=16, rankdir=TB, nodesep=0.4, ranksep=0.5];\n", dotQuote(d.title))
	b.WriteString("\tnode [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\", fontsize=11];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n")
	for _, n := range d.nodes {
		fmt.Fprintf(&b, "\t%s [label=%s%s];\n", dotID(n), dotLabel(n.lines...), dotStyle(n))
	}
	for _, a := range d.arrows {
		var attrs []string
		if a.label != "" {
			attrs = append(attrs, "label="+dotLabel(strings.Split(a.label, "\n")...))
		}
		if a.dashed {
			attrs = append(attrs, "style=dashed", "color=\""+keywordStroke+"\"")
		}
		if len(attrs) > 0 {
			fmt.Fprintf(&b, "\t%s -> %s [%s];\n", dotID(a.from), dotID(a.to), strings.Join(attrs, ", "))
		} else {
			fmt.Fprintf(&b, "\t%s -> %s;\n", dotID(a.from), dotID(a.to))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func dotID(n *node) string {
	switch n.kind {
	case nodeStep:
		return dotQuote(n.name)
	case nodeKeyword:
		return dotQuote("(keyword " + n.name + ")")
	}
	return dotQuote("(start)")
}

// dotStyle returns the attributes that set a node apart, after its label.
func dotStyle(n *node) string {
	switch {
	case n.kind == nodeEntry:
		return ", shape=circle, fillcolor=\"#333333\", fontcolor=\"#ffffff\", fontsize=10, width=0.6, fixedsize=true"
	case n.kind == nodeKeyword:
		return fmt.Sprintf(", shape=cds, style=\"filled,dashed\", fillcolor=%q, color=%q", keywordFill, keywordStroke)
	case n.sensitive:
		s := fmt.Sprintf(", shape=hexagon, style=\"filled,bold\", fillcolor=%q, color=%q, penwidth=2", sensitiveFill, sensitiveStroke)
		if n.end {
			s += ", peripheries=2"
		}
		return s
	case n.end:
		return fmt.Sprintf(", fillcolor=%q, color=%q, peripheries=2", endFill, endStroke)
	}
	return ""
}

// dotEscaper escapes a line for a double-quoted DOT string. A backslash is
// doubled so that Graphviz's own escapes (\N, \G, \l...) cannot be invoked by
// a guard's text; a quote is escaped so that it cannot end the string.
var dotEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", `\n`)

// dotQuote quotes an id or a one-line label.
func dotQuote(s string) string { return `"` + dotEscaper.Replace(s) + `"` }

// dotLabel quotes label lines, joined with \n, Graphviz's centred line break.
func dotLabel(lines ...string) string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = dotEscaper.Replace(l)
	}
	return `"` + strings.Join(out, `\n`) + `"`
}
