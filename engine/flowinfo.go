package engine

import (
	"runtime"
	"sync"
	"weak"

	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
)

// flowInfo is what the engine works out once per loaded flow version
// rather than once per message.
type flowInfo struct {
	// sensitive names the variables that hold sensitive values, worked out
	// again from the steps rather than trusted from the static check: a
	// value saved in a sensitive step, declared sensitive, or computed by
	// `set` from one (SECURITY.md, requirement 5: defence in depth).
	sensitive map[string]bool
	// lang is the flow's language, for labels without the contact's.
	lang string
	// choices caches the options of each choice question per language.
	choices sync.Map // choiceKey → *choiceList
	// contacts caches `contact` values, already in an interface. A plain
	// map, because a sync.Map key would be boxed on every lookup.
	mu       sync.RWMutex
	contacts map[flows.Contact]any
}

// contact returns the `contact` value of expressions, boxed once.
func (fi *flowInfo) contact(ch Channel, lang string) any {
	c := flows.Contact{Channel: string(ch), Language: lang}
	fi.mu.RLock()
	v, ok := fi.contacts[c]
	fi.mu.RUnlock()
	if ok {
		return v
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if v, ok := fi.contacts[c]; ok {
		return v
	}
	if fi.contacts == nil {
		fi.contacts = map[flows.Contact]any{}
	}
	v = c
	fi.contacts[c] = v
	return v
}

// choiceKey names a question's choices in one language.
type choiceKey struct {
	ask  *flows.Ask
	lang string
}

// choiceList is a question's choices in one language, ready to send.
type choiceList struct {
	opts []answer.Option
	// sms is the list written out for SMS ("Reply 1 for ...").
	sms string
	out []OutChoice
}

// infos maps each flow version in use to its info. Keys are weak, so a
// version that hot reload dropped is forgotten once nothing uses it.
var infos sync.Map // weak.Pointer[flows.Flow] → *flowInfo

// infoOf returns the info of a flow version, working it out on first use.
func infoOf(f *flows.Flow) *flowInfo {
	key := weak.Make(f)
	if v, ok := infos.Load(key); ok {
		return v.(*flowInfo)
	}
	fi := &flowInfo{sensitive: sensitiveVars(f), lang: f.Language}
	if v, loaded := infos.LoadOrStore(key, fi); loaded {
		return v.(*flowInfo)
	}
	runtime.AddCleanup(f, func(k weak.Pointer[flows.Flow]) { infos.Delete(k) }, key)
	return fi
}

// sensitiveVars computes which variables of f are sensitive from the
// model: the flags the static check set, the sensitive steps that save
// answers, sensitive declarations, and `set` expressions that read any of
// them (or `input` in a sensitive step), to a fixed point.
func sensitiveVars(f *flows.Flow) map[string]bool {
	out := map[string]bool{}
	for name, v := range f.Variables {
		if v.Sensitive {
			out[name] = true
		}
	}
	for _, d := range f.Vars {
		if d.Sensitive {
			out[d.Name] = true
		}
	}
	for _, s := range f.Steps {
		if s.Sensitive && s.Ask != nil && s.Ask.Save != "" {
			out[s.Ask.Save] = true
		}
	}
	for changed := true; changed; {
		changed = false
		for _, s := range f.Steps {
			for _, a := range s.Set {
				if out[a.Var] || a.Expr == nil {
					continue
				}
				taint := a.Expr.UsesInput && s.Sensitive
				for _, v := range a.Expr.Vars {
					taint = taint || out[v]
				}
				if taint {
					out[a.Var], changed = true, true
				}
			}
		}
	}
	return out
}

// choiceList returns a question's choices in lang, built on first use.
func (fi *flowInfo) choiceList(a *flows.Ask, lang string) *choiceList {
	key := choiceKey{a, lang}
	if v, ok := fi.choices.Load(key); ok {
		return v.(*choiceList)
	}
	opts := make([]answer.Option, len(a.Choices))
	out := make([]OutChoice, len(a.Choices))
	for i, c := range a.Choices {
		label := c.Value
		if c.Label != nil {
			if t := pickText(c.Label, lang, fi.lang); t != nil {
				label = t.Literal()
			}
		}
		opts[i] = answer.Option{Value: c.Value, Label: label, Synonyms: c.Synonyms}
		out[i] = OutChoice{Title: label, Payload: c.Value}
	}
	cl := &choiceList{opts: opts, sms: answer.RenderChoices(opts, lang), out: out}
	v, _ := fi.choices.LoadOrStore(key, cl)
	return v.(*choiceList)
}
