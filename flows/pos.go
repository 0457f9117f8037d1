package flows

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// scalarPos returns the file position of byte off of a scalar's value. It
// replays the scalar's source text (quotes, escapes, folded line breaks,
// block indentation) so that the caret lands on the character itself, not
// on where the unescaped value would put it. When the text cannot be
// replayed it falls back to the start of the scalar.
func (r *reader) scalarPos(n *yaml.Node, off int) Pos {
	off = min(max(off, 0), len(n.Value))
	var line, col int
	var ok bool
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		line, col, ok = r.blockPos(n, off)
	} else {
		line, col, ok = r.flowPos(n, off)
	}
	if !ok {
		return r.pos(n)
	}
	return Pos{File: r.file, Line: line, Col: col}
}

// line returns the text of line l (from 1) without its line break.
func (r *reader) line(l int) (string, bool) {
	if r.lines == nil {
		// One copy of the source as a string lets lines be sliced, not
		// copied, however many expressions need a position.
		r.text = string(r.src)
		r.lines = append(make([]int, 0, 1+bytes.Count(r.src, []byte{'\n'})), 0)
		for i := 0; ; {
			j := strings.IndexByte(r.text[i:], '\n')
			if j < 0 {
				break
			}
			i += j + 1
			r.lines = append(r.lines, i)
		}
	}
	if l < 1 || l > len(r.lines) {
		return "", false
	}
	start, end := r.lines[l-1], len(r.text)
	if l < len(r.lines) {
		end = r.lines[l] - 1
	}
	return strings.TrimSuffix(r.text[start:end], "\r"), true
}

// flowPos replays a plain, single-quoted or double-quoted scalar.
func (r *reader) flowPos(n *yaml.Node, off int) (int, int, bool) {
	line := n.Line
	text, ok := r.line(line)
	if !ok {
		return 0, 0, false
	}
	i := byteIndex(text, n.Column-1)
	if i < 0 {
		return 0, 0, false
	}
	if n.Style&yaml.TaggedStyle != 0 && strings.HasPrefix(text[i:], "!") {
		for i < len(text) && text[i] != ' ' && text[i] != '\t' {
			i++
		}
		for i < len(text) && (text[i] == ' ' || text[i] == '\t') {
			i++
		}
	}
	dq := n.Style&yaml.DoubleQuotedStyle != 0
	sq := n.Style&yaml.SingleQuotedStyle != 0
	if dq || sq {
		if i >= len(text) || (dq && text[i] != '"') || (sq && text[i] != '\'') {
			return 0, 0, false
		}
		i++
	}
	v := n.Value
	vi := 0
	for vi < off {
		if i >= len(text) {
			// A line break inside the scalar folds into one space, or into
			// one newline per blank line that follows it.
			blank := 0
			for {
				line++
				if text, ok = r.line(line); !ok {
					return 0, 0, false
				}
				if strings.TrimLeft(text, " \t") != "" {
					break
				}
				blank++
			}
			i = len(text) - len(strings.TrimLeft(text, " \t"))
			want := " "
			if blank > 0 {
				want = strings.Repeat("\n", blank)
			}
			if !strings.HasPrefix(v[vi:], want) {
				return 0, 0, false
			}
			vi += len(want)
			continue
		}
		c := text[i]
		switch {
		case dq && c == '\\':
			if i+1 >= len(text) {
				// An escaped line break joins the lines with nothing between.
				line++
				if text, ok = r.line(line); !ok {
					return 0, 0, false
				}
				i = len(text) - len(strings.TrimLeft(text, " \t"))
				continue
			}
			src, val, ok := escapeWidth(text[i+1:])
			if !ok {
				return 0, 0, false
			}
			i += 1 + src
			vi += val
			continue
		case sq && c == '\'':
			if i+1 < len(text) && text[i+1] == '\'' {
				i += 2
				vi++
				continue
			}
			return 0, 0, false
		case c == ' ' || c == '\t':
			// White space at the end of a line is dropped by the fold.
			if strings.TrimLeft(text[i:], " \t") == "" {
				i = len(text)
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(text[i:])
		if vi+size > len(v) || v[vi:vi+size] != text[i:i+size] {
			return 0, 0, false
		}
		i += size
		vi += size
	}
	return line, utf8.RuneCountInString(text[:i]) + 1, true
}

// escapeWidth measures the double-quoted escape that s starts with (s
// follows the backslash): the bytes it takes in the source and the bytes of
// what it stands for in the value.
func escapeWidth(s string) (src, val int, ok bool) {
	hex := 0
	switch s[0] {
	case 'x':
		hex = 2
	case 'u':
		hex = 4
	case 'U':
		hex = 8
	case '0', 'a', 'b', 't', '\t', 'n', 'v', 'f', 'r', 'e', ' ', '"', '/', '\\':
		return 1, 1, true
	case 'N', '_':
		return 1, 2, true
	case 'L', 'P':
		return 1, 3, true
	default:
		return 0, 0, false
	}
	if len(s) < 1+hex {
		return 0, 0, false
	}
	code, err := strconv.ParseUint(s[1:1+hex], 16, 32)
	if err != nil {
		return 0, 0, false
	}
	n := utf8.RuneLen(rune(code))
	if n < 0 {
		return 0, 0, false
	}
	return 1 + hex, n, true
}

// blockPos replays a literal (|) or folded (>) block scalar.
func (r *reader) blockPos(n *yaml.Node, off int) (int, int, bool) {
	v := n.Value
	folded := n.Style&yaml.FoldedStyle != 0
	first, indent := n.Line+1, -1
	for l := first; indent < 0; l++ {
		text, ok := r.line(l)
		if !ok {
			return 0, 0, false
		}
		if strings.TrimLeft(text, " ") != "" {
			indent = len(text) - len(strings.TrimLeft(text, " "))
		}
	}
	vi, content := 0, false
	for l := first; ; l++ {
		text, ok := r.line(l)
		if !ok {
			return 0, 0, false
		}
		if strings.TrimLeft(text, " ") == "" {
			continue // a blank line: its newline is part of the separator
		}
		if len(text)-len(strings.TrimLeft(text, " ")) < indent {
			return 0, 0, false // the block ended before off
		}
		c := text[indent:]
		// Lines are joined by one space (folded, between two lines that are
		// not indented further) or by newlines.
		if content && folded && strings.HasPrefix(v[vi:], " ") && c[0] != ' ' && c[0] != '\t' {
			vi++
		} else {
			for vi < len(v) && v[vi] == '\n' {
				vi++
			}
		}
		if off <= vi {
			return l, indent + 1, true
		}
		if !strings.HasPrefix(v[vi:], c) {
			return 0, 0, false
		}
		if off <= vi+len(c) {
			return l, indent + 1 + utf8.RuneCountInString(c[:off-vi]), true
		}
		vi += len(c)
		content = true
	}
}

// byteIndex returns the byte index of rune col (from 0) of s, or -1.
func byteIndex(s string, col int) int {
	n := 0
	for i := range s {
		if n == col {
			return i
		}
		n++
	}
	if n == col {
		return len(s)
	}
	return -1
}
