package flows

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr/ast"
	exprchecker "github.com/expr-lang/expr/checker"
	exprcompiler "github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"

	"github.com/safeflow/safeflow/flows/diag"
)

var (
	boolType    = reflect.TypeFor[bool]()
	anyType     = reflect.TypeFor[any]()
	contactType = reflect.TypeFor[Contact]()
	// helperEnv holds the helper functions for type checking; the clock is
	// never called at load time.
	helperEnv = Helpers(time.Now)
)

// exprKind says where an expression stands, which decides its expected type
// and the names it may use.
type exprKind int

const (
	kindAny  exprKind = iota // set, verify.equals and {{ }} in messages
	kindBool                 // when
	kindLink                 // {{ }} in secure.link_message: only `link`
)

// compiler types every variable of a flow and compiles every expression once,
// reusing one checker configuration and caching identical sources.
type compiler struct {
	f     *Flow
	r     *reader
	diags *diag.List
	cfg   *conf.Config
	// linkCfg knows only `link`, for the secure link message.
	linkCfg *conf.Config
	cache   map[cacheKey]compiled
}

type cacheKey struct {
	src  string
	kind exprKind
}

type compiled struct {
	prog  *vm.Program
	vars  []string
	input bool
	typ   reflect.Type
	err   error
}

func newCompiler(f *Flow, r *reader) *compiler {
	f.Variables = map[string]*Variable{}
	return &compiler{f: f, r: r, diags: &r.diags, cache: map[cacheKey]compiled{}}
}

func (c *compiler) compile() {
	c.declare()
	c.cfg = c.config(false)
	c.typeSets()
	c.f.forEachExpr(func(e *Expr, k exprKind) {
		if e.Program == nil && e.Ident == "" {
			c.expr(e, k)
		}
		// Positions are known now; dropping the node lets the YAML tree go
		// instead of living as long as the loaded flow.
		e.node = nil
	})
	if v := c.f.Secure.Verify; v != nil && v.Equals != nil && v.Equals.Type != nil {
		v.Type = typeName(v.Equals)
	}
}

// typeName maps the Go type of verify.equals to the input type that parses
// the patient's answer for comparison.
func typeName(e *Expr) string {
	switch e.Type {
	case timeType:
		return TypeDate
	case inputTypes[TypeInteger]:
		return TypeInteger
	case inputTypes[TypeNumber]:
		return TypeNumber
	}
	return TypeText
}

// declare records the variables that declarations and answers fill.
func (c *compiler) declare() {
	for _, d := range c.f.Vars {
		c.variable(d.Name, d.Type, inputTypes[d.Type], d.Sensitive, d.Pos)
	}
	for _, s := range c.f.Steps {
		if s.Ask != nil && s.Ask.Save != "" && s.Ask.Type != "" {
			c.variable(s.Ask.Save, s.Ask.Type, inputTypes[s.Ask.Type], s.Sensitive, s.Ask.savePos)
		}
	}
}

// variable records one source of a variable, reporting a type clash.
func (c *compiler) variable(name, typ string, gt reflect.Type, sensitive bool, pos Pos) {
	v, ok := c.f.Variables[name]
	if !ok {
		c.f.Variables[name] = &Variable{Name: name, Type: typ, GoType: gt, Sensitive: sensitive, Pos: pos}
		return
	}
	v.Sensitive = v.Sensitive || sensitive
	if v.GoType != gt && gt != anyType && v.GoType != anyType {
		c.diags.Add(pos, diag.ExprType, "Use another variable name for one of them.",
			"`%s` holds %s here, but %s at %d:%d", name, describe(gt), describe(v.GoType), v.Pos.Line, v.Pos.Col)
	}
}

// typeSets compiles the `set` expressions in dependency order, so each
// variable they make gets the type of its expression. Sets are tried in
// file order, which is usually the order they depend on each other; one
// that reads a variable only a later set makes stops at that name, waits
// for it, and is tried again once it is typed. Each newly typed variable
// joins the checker's environment at once. Sets still waiting at the end
// form a cycle (or read a name nobody saves); they are compiled anyway so
// that the unknown names are reported.
func (c *compiler) typeSets() {
	var all []*Assign
	for _, s := range c.f.Steps {
		for _, a := range s.Set {
			if a.Expr != nil {
				all = append(all, a)
			}
		}
	}
	if len(all) == 0 {
		return
	}
	waiting := map[string]bool{}
	for _, a := range all {
		if _, known := c.f.Variables[a.Var]; !known {
			waiting[a.Var] = true
		}
	}
	blocked := map[string][]int{} // waiting variable -> sets stopped at it
	queue := make([]int, len(all))
	for i := range queue {
		queue[i] = i
	}
	done := make([]bool, len(all))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		a := all[i]
		if name := c.exprWaiting(a.Expr, kindAny, waiting); name != "" {
			blocked[name] = append(blocked[name], i)
			continue
		}
		done[i] = true
		t := a.Expr.Type
		if t == nil {
			t = anyType
		}
		c.variable(a.Var, "value", t, false, a.Pos)
		if waiting[a.Var] {
			delete(waiting, a.Var)
			c.addToEnv(a.Var)
			queue = append(queue, blocked[a.Var]...)
			delete(blocked, a.Var)
		}
	}
	for i, a := range all {
		if !done[i] {
			c.expr(a.Expr, kindAny)
			c.variable(a.Var, "value", anyType, false, a.Pos)
		}
	}
	for name := range waiting {
		c.addToEnv(name)
	}
}

// addToEnv adds a variable typed after the configuration was built to the
// checker's environment, instead of building the configuration again.
func (c *compiler) addToEnv(name string) {
	v := c.f.Variables[name]
	if v == nil {
		return
	}
	var zero any
	if v.GoType != nil && v.GoType != anyType {
		zero = reflect.Zero(v.GoType).Interface()
	}
	c.cfg.Env.Fields[name] = c.cfg.NtCache.NatureOf(zero)
	if env, ok := c.cfg.EnvObject.(map[string]any); ok {
		env[name] = zero
	}
}

// config builds the checker configuration: every variable known so far with
// a value of its type, `input`, `contact` and the helpers.
func (c *compiler) config(link bool) *conf.Config {
	env := make(map[string]any, len(c.f.Variables)+len(helperEnv)+3)
	for k, v := range helperEnv {
		env[k] = v
	}
	for name, v := range c.f.Variables {
		if v.GoType == nil || v.GoType == anyType {
			env[name] = nil
			continue
		}
		env[name] = reflect.Zero(v.GoType).Interface()
	}
	env["input"] = ""
	env["contact"] = Contact{}
	if link {
		env = map[string]any{"link": ""}
	}
	cfg := conf.CreateNew()
	cfg.WithEnv(env)
	delete(cfg.Builtins, "now")
	cfg.Check()
	return cfg
}

// expr compiles one expression, or takes it from the cache.
func (c *compiler) expr(e *Expr, k exprKind) { c.exprWaiting(e, k, nil) }

// exprWaiting compiles one expression unless it reads a name in waiting: a
// variable that a set makes but that is not typed yet. Then it returns that
// name and changes nothing, so the expression can be tried again later.
func (c *compiler) exprWaiting(e *Expr, k exprKind, waiting map[string]bool) string {
	if isName(e.Source) && k != kindLink {
		if waiting[e.Source] {
			return e.Source
		}
		if c.fastIdent(e, k) {
			return ""
		}
	}
	key := cacheKey{e.Source, k}
	res, ok := c.cache[key]
	if !ok {
		res = c.build(e.Source, k)
		var fe *file.Error
		if waiting != nil && errors.As(res.err, &fe) {
			if name, ok := strings.CutPrefix(fe.Message, "unknown name "); ok && waiting[name] {
				return name
			}
		}
		c.cache[key] = res
	}
	if res.err != nil {
		c.report(e, k, res.err)
		return ""
	}
	e.Program, e.Vars, e.UsesInput, e.Type = res.prog, res.vars, res.input, res.typ
	return ""
}

// fastIdent handles a lone variable name without the VM: most guards and
// template parts are one. It returns false to fall back to the compiler.
func (c *compiler) fastIdent(e *Expr, k exprKind) bool {
	var t reflect.Type
	switch {
	case e.Source == "input":
		t, e.UsesInput = stringType, true
	case c.f.Variables[e.Source] != nil:
		t = c.f.Variables[e.Source].GoType
		e.Vars = []string{e.Source}
	default:
		return false
	}
	if k == kindBool && t != boolType && t != anyType {
		c.diags.Add(e.Pos, diag.ExprType, fmt.Sprintf("Compare it with something, for example `%s == \"yes\"`.", e.Source),
			"the condition `%s` should be true or false, but `%s` holds %s", e.Source, e.Source, describe(t))
		return true
	}
	e.Ident, e.Type = e.Source, t
	return true
}

func (c *compiler) build(src string, k exprKind) compiled {
	cfg := c.cfg
	if k == kindLink {
		if c.linkCfg == nil {
			c.linkCfg = c.config(true)
		}
		cfg = c.linkCfg
	}
	cp := *cfg
	if k == kindBool {
		cp.Expect, cp.ExpectAny = reflect.Bool, true
	}
	tree, err := exprchecker.ParseCheck(src, &cp)
	if err != nil {
		return compiled{err: err}
	}
	if err := optimizer.Optimize(&tree.Node, &cp); err != nil {
		return compiled{err: err}
	}
	prog, err := exprcompiler.Compile(tree, &cp)
	if err != nil {
		return compiled{err: err}
	}
	res := compiled{prog: prog, typ: tree.Node.Type()}
	for _, id := range identifiers(tree.Node) {
		switch {
		case id == "input":
			res.input = true
		case c.f.Variables[id] != nil:
			res.vars = append(res.vars, id)
		}
	}
	slices.Sort(res.vars)
	res.vars = slices.Compact(res.vars)
	return res
}

// tokenRe reads the text of a token out of expr's `Kind("text")`.
var tokenRe = regexp.MustCompile(`^\w+\("(.*)"\)$`)

// report turns an expr error into a diagnostic at the right character.
func (c *compiler) report(e *Expr, k exprKind, err error) {
	var fe *file.Error
	pos, msg := e.Pos, err.Error()
	if errors.As(err, &fe) {
		msg = fe.Message
		pos = c.posAt(e, runeToByte(e.Source, fe.From))
	}
	name, unknown := strings.CutPrefix(msg, "unknown name ")
	if unknown && k == kindLink {
		// The link message goes out before the patient is verified, so no
		// variable may appear in it, known or not.
		c.diags.Add(pos, diag.LinkMessage, "Leave only {{ link }} in the link message.",
			"the secure link message may only show {{ link }}, not `%s`: it is sent on SMS or Messenger", name)
		return
	}
	if unknown {
		names := make([]string, 0, len(c.f.Variables))
		for n := range c.f.Variables {
			names = append(names, n)
		}
		hint, mean := "Check the spelling, or save an answer under this name in an earlier step.", ""
		if s := suggest(name, names); s != "" {
			hint, mean = fmt.Sprintf("Write `%s` instead.", s), fmt.Sprintf(". Did you mean `%s`?", s)
		}
		c.diags.Add(pos, diag.ExprType, hint, "`%s` is not a variable of this flow%s", name, mean)
		return
	}
	if tok, ok := strings.CutPrefix(msg, "unexpected token "); ok {
		if tok == "EOF" {
			msg = "it ends too soon; is something missing at the end, such as a value or a closing bracket?"
		} else if m := tokenRe.FindStringSubmatch(tok); m != nil {
			msg = fmt.Sprintf("`%s` is not expected here", m[1])
		}
		c.diags.Add(pos, diag.ExprSyntax, "See docs/authoring.md, section Expressions, for what expressions may contain.",
			"the expression `%s` cannot be read: %s", strings.Join(strings.Fields(e.Source), " "), msg)
		return
	}
	code := diag.ExprType
	if strings.Contains(msg, "unexpected token") || strings.Contains(msg, "unexpected end") ||
		strings.Contains(msg, "unclosed") || strings.Contains(msg, "literal not terminated") {
		code = diag.ExprSyntax
	}
	c.diags.Add(pos, code, "See docs/authoring.md, section Expressions, for what expressions may contain.",
		"the expression `%s` has a problem: %s", strings.Join(strings.Fields(e.Source), " "), msg)
}

// posAt maps a byte offset inside an expression to the flow file.
func (c *compiler) posAt(e *Expr, off int) Pos {
	if e.node == nil {
		return e.Pos
	}
	return c.r.scalarPos(e.node, e.off+off)
}

func runeToByte(s string, runes int) int {
	n := 0
	for i := range s {
		if n == runes {
			return i
		}
		n++
	}
	return len(s)
}

// identifiers lists the names an expression reads from its environment.
func identifiers(n ast.Node) []string {
	var v identVisitor
	ast.Walk(&n, &v)
	return v.names
}

type identVisitor struct{ names []string }

func (v *identVisitor) Visit(n *ast.Node) {
	if id, ok := (*n).(*ast.IdentifierNode); ok {
		v.names = append(v.names, id.Value)
	}
}

// describe names a Go type in words for clinic staff.
func describe(t reflect.Type) string {
	switch {
	case t == nil || t == anyType:
		return "a value of any kind"
	case t == boolType:
		return "a yes/no value"
	case t == stringType:
		return "text"
	case t == timeType:
		return "a date"
	case t == contactType:
		return "contact details"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		return "a whole number"
	case reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a record"
	case reflect.Func:
		return "a function"
	}
	return t.String()
}

// forEachExpr calls fn for every expression of the flow with its kind.
func (f *Flow) forEachExpr(fn func(*Expr, exprKind)) {
	msg := func(m *Message, k exprKind) {
		if m == nil {
			return
		}
		for _, t := range m.Text {
			for _, p := range t.Parts {
				if p.Expr != nil {
					fn(p.Expr, k)
				}
			}
		}
	}
	msgs := func(ms []*Message) {
		for _, m := range ms {
			msg(m, kindAny)
		}
	}
	msg(f.Secure.LinkMessage, kindLink)
	if v := f.Secure.Verify; v != nil {
		msg(v.Prompt, kindAny)
		if v.Equals != nil {
			fn(v.Equals, kindAny)
		}
	}
	for _, k := range f.Keywords {
		msgs(k.Say)
	}
	for _, s := range f.Steps {
		msgs(s.Say)
		if a := s.Ask; a != nil {
			msg(a.Prompt, kindAny)
			msg(a.Retry, kindAny)
			msg(a.Reminder, kindAny)
			for _, ch := range a.Choices {
				msg(ch.Label, kindAny)
			}
		}
		for _, a := range s.Set {
			if a.Expr != nil {
				fn(a.Expr, kindAny)
			}
		}
		for _, r := range s.Next {
			if r.When != nil {
				fn(r.When, kindBool)
			}
		}
	}
}
