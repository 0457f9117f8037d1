package convtest

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/engine"
)

// FileUpdate says which tests of a file had their bot lines rewritten.
type FileUpdate struct {
	Path  string
	Tests []string
	// Reformatted is true when the file could not be patched line by line
	// and was written out again whole (comments are kept, blank lines and
	// some quoting are not).
	Reformatted bool
}

// Update writes back the bot lines that a run with Options.Update recorded,
// so that staff can review the change as a diff. Each file's yaml.v3 node
// tree is edited; the file is then patched only where bot lines changed,
// leaving every other line, comment and blank line as it was. When such a
// patch cannot be made, the edited tree is encoded whole.
func (s *Suite) Update(rep *Report) ([]FileUpdate, error) {
	var out []FileUpdate
	for _, fr := range rep.Files {
		var changed []*Result
		for _, res := range fr.Results {
			if len(res.rewrites) > 0 {
				changed = append(changed, res)
			}
		}
		if len(changed) == 0 {
			continue
		}
		src, reformatted, err := rewriteFile(fr.File, changed)
		if err != nil {
			return out, fmt.Errorf("update %s: %w", fr.File.Path, err)
		}
		info, err := os.Stat(fr.File.Path)
		if err != nil {
			return out, fmt.Errorf("update %s: %w", fr.File.Path, err)
		}
		if err := os.WriteFile(fr.File.Path, src, info.Mode().Perm()); err != nil {
			return out, fmt.Errorf("update %s: %w", fr.File.Path, err)
		}
		u := FileUpdate{Path: fr.File.Path, Reformatted: reformatted}
		for _, res := range changed {
			u.Tests = append(u.Tests, res.Test.Name)
		}
		out = append(out, u)
	}
	return out, nil
}

// patch replaces lines [from, to) of the source (0-based) with text.
type patch struct {
	from, to int
	lines    []string
}

// rewriteFile applies the rewrites of the given results to the file's node
// tree and returns the new source.
func rewriteFile(f *File, results []*Result) ([]byte, bool, error) {
	lines := strings.Split(string(f.Src), "\n")
	var patches []patch
	patchable := true
	for _, res := range results {
		t := res.Test
		if t.convNode == nil {
			// A test without a conversation gets one, holding the lines
			// the clinic's start produced (its only possible group).
			testNode := findTestNode(f.doc, t)
			if testNode == nil {
				return nil, false, fmt.Errorf("test %q not found in the file", t.Name)
			}
			t.convNode = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			testNode.Content = append(testNode.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "conversation"}, t.convNode)
			items, _ := newItems(t, res.rewrites[0])
			t.convNode.Content = items
			if p, ok := conversationPatch(lines, testNode, items); ok && patchable {
				patches = append(patches, p)
			} else {
				patchable = false
			}
			continue
		}
		var ranges [][2]int
		indent := -1
		if t.convNode.Style&yaml.FlowStyle == 0 {
			ranges, indent = itemRanges(lines, t.convNode)
		}
		if indent < 0 {
			patchable = false
		}
		// Later groups first, so that earlier indexes stay valid.
		rws := slices.Clone(res.rewrites)
		slices.SortFunc(rws, func(a, b rewrite) int { return b.at - a.at })
		for _, rw := range rws {
			items, reused := newItems(t, rw)
			if patchable {
				patches = append(patches, linePatch(lines, ranges, indent, rw, items, reused))
			}
			c := t.convNode.Content
			t.convNode.Content = slices.Concat(c[:rw.at], items, c[rw.at+rw.n:])
		}
	}
	if patchable {
		slices.SortFunc(patches, func(a, b patch) int { return b.from - a.from })
		for _, p := range patches {
			lines = slices.Concat(lines[:p.from], p.lines, lines[p.to:])
		}
		src := []byte(strings.Join(lines, "\n"))
		if sameDocument(src, f.doc) {
			return src, false, nil
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f.doc); err != nil {
		return nil, false, err
	}
	if err := enc.Close(); err != nil {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}

// findTestNode finds the mapping node of a test by its position.
func findTestNode(doc *yaml.Node, t *Test) *yaml.Node {
	var found *yaml.Node
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode && n.Line == t.Pos.Line && n.Column == t.Pos.Col {
			found = n
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc)
	return found
}

// sameDocument reports whether src decodes to the same data as the tree.
func sameDocument(src []byte, doc *yaml.Node) bool {
	var a, b any
	if err := yaml.Unmarshal(src, &a); err != nil {
		return false
	}
	if err := doc.Decode(&b); err != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// newItems builds the conversation items for what the bot said. An old
// line that still matches is kept as written (reused[i] is its index in
// the conversation, else -1).
func newItems(t *Test, rw rewrite) ([]*yaml.Node, []int) {
	items := make([]*yaml.Node, len(rw.got))
	reused := make([]int, len(rw.got))
	for i, o := range rw.got {
		reused[i] = -1
		var old *Turn
		if i < rw.n {
			old = t.Turns[rw.at+i]
		}
		if old != nil && old.Channel == o.Channel && old.Want.Match(o.Text) &&
			(old.Buttons == nil || slices.Equal(old.Buttons, buttons(o))) {
			items[i], reused[i] = old.node, rw.at+i
			continue
		}
		key := "bot"
		if o.Channel != t.Channel {
			key = string(o.Channel)
		}
		if old != nil && old.Channel == o.Channel {
			key = old.Key
		}
		withButtons := len(o.Choices) > 0 && (o.Channel != engine.SMS || old != nil && old.Buttons != nil)
		items[i] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, botValue(o, withButtons)}}
	}
	return items, reused
}

func botValue(o *engine.Outbound, withButtons bool) *yaml.Node {
	text := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: o.Text, Style: yaml.DoubleQuotedStyle}
	if literalOK(o.Text) {
		text.Style = yaml.LiteralStyle
	}
	if !withButtons {
		return text
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, b := range buttons(o) {
		n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: b}
		if !plainOK(b) {
			n.Style = yaml.DoubleQuotedStyle
		}
		seq.Content = append(seq.Content, n)
	}
	text.Style = yaml.DoubleQuotedStyle
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle, Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "text"}, text,
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: "buttons"}, seq}}
}

// literalOK reports whether a multi-line text can be written as a |-
// block and read back unchanged.
func literalOK(s string) bool {
	if !strings.Contains(s, "\n") || strings.HasSuffix(s, "\n") || strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\n") {
		return false
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimRight(l, " \t") != l {
			return false
		}
		for _, r := range l {
			if !strconv.IsPrint(r) && r != '\t' {
				return false
			}
		}
	}
	return true
}

var plainWord = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9 .'()-]*$`)

// plainOK reports whether a button title can be written without quotes.
func plainOK(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "yes", "no", "on", "off", "y", "n", "null":
		return false
	}
	return plainWord.MatchString(s) && !strings.HasSuffix(s, " ")
}

// conversationPatch adds a `conversation:` block at the end of a test
// that had none.
func conversationPatch(lines []string, test *yaml.Node, items []*yaml.Node) (patch, bool) {
	_, to, _, ok := itemLines(lines, test)
	if !ok {
		return patch{}, false
	}
	pad := strings.Repeat(" ", test.Column-1)
	p := patch{from: to, to: to, lines: []string{pad + "conversation:"}}
	for _, item := range items {
		p.lines = append(p.lines, renderItem(pad+"  ", item)...)
	}
	return p, true
}

// itemRanges finds the lines of each item of a block sequence and the
// column of their dashes; the column is -1 when the items cannot be
// patched line by line.
func itemRanges(lines []string, conv *yaml.Node) ([][2]int, int) {
	if len(conv.Content) == 0 {
		return nil, -1
	}
	ranges := make([][2]int, len(conv.Content))
	indent := -1
	for i, item := range conv.Content {
		from, to, ind, ok := itemLines(lines, item)
		if !ok || indent >= 0 && ind != indent {
			return nil, -1
		}
		ranges[i], indent = [2]int{from, to}, ind
	}
	return ranges, indent
}

// linePatch makes the text patch for one rewritten group: kept lines are
// copied as they are, new ones are written at the items' indentation.
func linePatch(lines []string, ranges [][2]int, indent int, rw rewrite, items []*yaml.Node, reused []int) patch {
	var p patch
	switch {
	case rw.n > 0:
		p.from, p.to = ranges[rw.at][0], ranges[rw.at+rw.n-1][1]
	case rw.at > 0:
		p.from = ranges[rw.at-1][1]
		p.to = p.from
	default:
		p.from = ranges[0][0]
		p.to = p.from
	}
	pad := strings.Repeat(" ", indent)
	for i, item := range items {
		if reused[i] >= 0 {
			r := ranges[reused[i]]
			p.lines = append(p.lines, lines[r[0]:r[1]]...)
			continue
		}
		p.lines = append(p.lines, renderItem(pad, item)...)
	}
	return p
}

// itemLines finds the lines [from, to) of a block sequence item and the
// column of its dash.
func itemLines(lines []string, item *yaml.Node) (from, to, indent int, ok bool) {
	from = item.Line - 1
	if item.Kind != yaml.MappingNode || from < 0 || from >= len(lines) {
		return 0, 0, 0, false
	}
	line := lines[from]
	col := runeOffset(line, item.Column-1)
	if col > len(line) || strings.TrimSpace(line[:col]) != "-" {
		return 0, 0, 0, false
	}
	indent = strings.Index(line, "-")
	to = from + 1
	for to < len(lines) {
		l := lines[to]
		trimmed := strings.TrimSpace(l)
		if trimmed != "" && len(l)-len(strings.TrimLeft(l, " ")) <= indent {
			break
		}
		to++
	}
	for to > from+1 && strings.TrimSpace(lines[to-1]) == "" {
		to--
	}
	return from, to, indent, true
}

// runeOffset converts a column counted in characters to a byte offset.
func runeOffset(s string, n int) int {
	i := 0
	for off := range s {
		if i == n {
			return off
		}
		i++
	}
	return len(s)
}

// renderItem writes one new conversation item, "- key: value", at pad.
func renderItem(pad string, item *yaml.Node) []string {
	key, val := item.Content[0].Value, item.Content[1]
	head := pad + "- " + key + ": "
	if val.Kind == yaml.ScalarNode {
		if val.Style == yaml.LiteralStyle {
			out := []string{head + "|-"}
			for _, l := range strings.Split(val.Value, "\n") {
				if l == "" {
					out = append(out, "")
				} else {
					out = append(out, pad+"    "+l)
				}
			}
			return out
		}
		return []string{head + strconv.Quote(val.Value)}
	}
	// { text: "...", buttons: [A, B] }
	var b strings.Builder
	b.WriteString(head + "{ text: " + strconv.Quote(val.Content[1].Value) + ", buttons: [")
	for i, n := range val.Content[3].Content {
		if i > 0 {
			b.WriteString(", ")
		}
		if n.Style == yaml.DoubleQuotedStyle {
			b.WriteString(strconv.Quote(n.Value))
		} else {
			b.WriteString(n.Value)
		}
	}
	b.WriteString("] }")
	return []string{b.String()}
}
