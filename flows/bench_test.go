package flows_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

// benchVar is a variable the generated flow has saved so far.
type benchVar struct {
	name, typ string
	sensitive bool
}

// genFlow writes a realistic flow of n steps: a long bilingual check-up
// questionnaire that asks every type of question, with guards, templates,
// sets, choices with synonyms, sensitive sections, reminders and a front
// desk fallback. It is deterministic and loads without any diagnostic.
func genFlow(n int) []byte {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Generated for benchmarks: a long yearly check-up questionnaire.\n")
	w("flow: yearly-check-up\ntitle: Yearly check-up questionnaire\n")
	w("description: Everything the care team asks before a yearly check-up, in English and Spanish.\n")
	w("language: en\ntrigger:\n  keywords: [CHECKUP, CHEQUEO]\n")
	w("vars:\n  clinic_name: text\n  visit_day: date\n  date_of_birth: { type: date, sensitive: true }\n")
	w("secure:\n  link_message:\n    en: \"To answer the private questions, tap {{ link }} (valid for 30 minutes).\"\n")
	w("    es: \"Para responder las preguntas privadas, toque {{ link }} (válido por 30 minutos).\"\n")
	w("  link_ttl: 30m\n  verify:\n    prompt: { en: \"Please enter your date of birth\", es: \"Escriba su fecha de nacimiento\" }\n    equals: date_of_birth\n")
	w("keywords:\n  HELP:\n    say:\n      en: \"Reply AGENT to talk to the front desk of {{ clinic_name }}.\"\n")
	w("      es: \"Responda AGENT para hablar con la recepción de {{ clinic_name }}.\"\n")
	w("  AGENT: { handoff: front-desk }\n  LATER:\n    say: { en: \"We'll keep your answers for a day.\", es: \"Guardaremos sus respuestas por un día.\" }\n    end: true\n")
	w("steps:\n")

	vars := []benchVar{{"clinic_name", "text", false}, {"visit_day", "date", false}}
	id := func(i int) string {
		if i >= n {
			return "finish"
		}
		return fmt.Sprintf("s%03d", i)
	}
	// last returns the most recent variable of a type that a step of the
	// given sensitivity may show.
	last := func(typ string, sensitive bool) string {
		for j := len(vars) - 1; j >= 0; j-- {
			if vars[j].typ == typ && (sensitive || !vars[j].sensitive) {
				return vars[j].name
			}
		}
		return ""
	}
	topics := []string{"sleep", "diet", "exercise", "work", "family", "mood", "pain", "vision", "hearing", "skin"}
	otherTypes := []string{"time", "phone", "email", "zip", "pattern"}
	// The first step saves the date of birth that verify compares.
	w("  s000:\n    sensitive: true\n    say:\n      en: \"Welcome to your yearly check-up questionnaire.\"\n")
	w("      es: \"Bienvenido a su cuestionario del chequeo anual.\"\n")
	w("    ask:\n      prompt: { en: \"What is your date of birth?\", es: \"¿Cuál es su fecha de nacimiento?\" }\n")
	w("      type: date\n      save: q000_born\n    set:\n      q000_age: age(q000_born)\n    next: s001\n")
	vars = append(vars, benchVar{"q000_born", "date", true}, benchVar{"q000_age", "value_int", true})
	for i := 1; i < n; i++ {
		topic := topics[(i/10)%len(topics)]
		sensitive := i%10 == 8 || (i/10)%4 == 3
		name := fmt.Sprintf("q%03d_%s", i, topic)
		w("  %s:\n", id(i))
		w("    note: Question %d of the %s section; reviewed by the care team before the visit.\n", i, topic)
		if sensitive {
			w("    sensitive: true\n")
		}
		if t := last("text", sensitive); t != "" && i%3 == 0 && i%10 != 3 && i%10 != 9 {
			w("    say:\n      - en: \"Thanks, {{ %s }}. Next, a few words about your %s.\"\n", t, topic)
			w("        es: \"Gracias, {{ %s }}. Ahora, algunas preguntas sobre su %s.\"\n", t, topic)
			w("      - en: \"Question %d of %d.\"\n        es: \"Pregunta %d de %d.\"\n", i, n, i, n)
		}
		switch i % 10 {
		case 0, 8:
			w("    ask:\n      prompt:\n        en: \"In a few words, how is your %s lately?\"\n", topic)
			w("        es: \"En pocas palabras, ¿cómo está su %s últimamente?\"\n", topic)
			w("      type: text\n      save: %s\n      min: 2\n      max: 500\n", name)
			w("      retry: { en: \"Please write a few words, up to 500 letters.\", es: \"Escriba algunas palabras, hasta 500 letras.\" }\n")
			w("    set:\n      %s_flag: %s matches \"(?i)bad|worse|pain|%s\"\n", name, name, topic)
			vars = append(vars, benchVar{name, "text", sensitive}, benchVar{name + "_flag", "value_bool", sensitive})
			w("    next:\n      - when: %s_flag\n        goto: %s\n      - goto: %s\n", name, id(i+1), id(i+1))
		case 1:
			w("    ask:\n      prompt:\n        en: \"How many hours a week do you spend on %s?\"\n", topic)
			w("        es: \"¿Cuántas horas a la semana dedica a %s?\"\n", topic)
			w("      type: number\n      save: %s\n      min: 0\n      max: 168\n", name)
			w("      retry: { en: \"Please reply with a number from 0 to 168.\", es: \"Responda con un número de 0 a 168.\" }\n")
			w("    set:\n      %s_daily: %s / 7\n      %s_score: %s * 2 + %d\n", name, name, name, name, i)
			vars = append(vars, benchVar{name, "number", sensitive}, benchVar{name + "_daily", "value_num", sensitive}, benchVar{name + "_score", "value_num", sensitive})
			w("    next: %s\n", id(i+1))
		case 2:
			w("    ask:\n      prompt:\n        en: \"How many days in the last week did %s bother you?\"\n", topic)
			w("        es: \"¿Cuántos días de la última semana le molestó %s?\"\n", topic)
			w("      type: integer\n      save: %s\n      min: 0\n      max: 7\n      attempts: 2\n      on_fail: front-desk\n", name)
			w("      retry: { en: \"Please reply with a number of days from 0 to 7.\", es: \"Responda con un número de días de 0 a 7.\" }\n")
			vars = append(vars, benchVar{name, "integer", sensitive})
			// Skip the next (say-only) step when nothing bothered them.
			w("    next:\n      - when: %s == 0 && %s_score < %d\n        goto: %s\n      - goto: %s\n",
				name, strings.TrimSuffix(last("number", true), ""), 100+i, id(i+2), id(i+1))
		case 3:
			num := last("number", sensitive)
			w("    say:\n      en: \"Noted: about {{ %s_daily }} hours a day. {{ %s > 40 ? 'That is a lot.' : 'Thanks.' }}\"\n", num, num)
			w("      es: \"Anotado: unas {{ %s_daily }} horas al día. {{ %s > 40 ? 'Es mucho.' : 'Gracias.' }}\"\n", num, num)
			w("    next: %s\n", id(i+1))
		case 4:
			w("    ask:\n      prompt:\n        en: \"Has your %s changed since your last visit?\"\n", topic)
			w("        es: \"¿Ha cambiado su %s desde su última visita?\"\n", topic)
			w("      type: yes_no\n      save: %s\n", name)
			w("      retry: { en: \"Please reply YES or NO.\", es: \"Responda SÍ o NO, por favor.\" }\n")
			vars = append(vars, benchVar{name, "yes_no", sensitive})
			w("    next:\n      - when: %s and %s > 3\n        goto: %s\n      - goto: %s\n", name, last("integer", true), id(i+1), id(i+1))
		case 5:
			w("    ask:\n      prompt:\n        en: \"How would you rate your %s?\"\n        es: \"¿Cómo calificaría su %s?\"\n", topic, topic)
			w("      type: choice\n      choices:\n")
			for k, c := range [][3]string{{"great", "Great", "Excelente"}, {"good", "Good", "Bien"}, {"fair", "Fair", "Regular"}, {"poor", "Poor", "Mal"}} {
				w("        - value: %s\n          label: { en: %s, es: %s }\n          synonyms: [%s%d, \"%s %s\"]\n", c[0], c[1], c[2], c[0][:2], k+5, c[0], topic)
			}
			w("      save: %s\n      retry: { en: \"Please reply with one of the words listed.\", es: \"Responda con una de las palabras de la lista.\" }\n", name)
			w("      attempts: 3\n      on_fail: front-desk\n")
			vars = append(vars, benchVar{name, "choice", sensitive})
			w("    next:\n      - when: %s in [\"fair\", \"poor\"]\n        goto: %s\n      - goto: %s\n", name, id(i+1), id(i+1))
		case 6:
			w("    ask:\n      prompt:\n        en: \"When did you last see a doctor about your %s?\"\n", topic)
			w("        es: \"¿Cuándo consultó a un médico por su %s por última vez?\"\n", topic)
			w("      type: date\n      save: %s\n", name)
			w("      retry: { en: \"Please reply with a date such as March 3 or 3/3/2025.\", es: \"Responda con una fecha como 3 de marzo o 3/3/2025.\" }\n")
			w("    set:\n      %s_days: days_since(%s)\n", name, name)
			vars = append(vars, benchVar{name, "date", sensitive}, benchVar{name + "_days", "value_int", sensitive})
			w("    next:\n      - when: %s_days > 365 || days_until(visit_day) < %d\n        goto: %s\n      - goto: %s\n", name, i%30, id(i+1), id(i+1))
		case 7:
			typ := otherTypes[(i/10)%len(otherTypes)]
			w("    ask:\n      prompt:\n        en: \"Please reply with your %s for the %s team.\"\n", typ, topic)
			w("        es: \"Responda con su %s para el equipo de %s.\"\n", typ, topic)
			w("      type: %s\n      save: %s\n", typ, name)
			if typ == "pattern" {
				w("      pattern: \"[A-Z]{2}-[0-9]{%d}\"\n", 3+i%4)
			}
			w("      timeout: 24h\n      reminder:\n        en: \"Just checking in about your %s, {{ clinic_name }} is waiting.\"\n", typ)
			w("        es: \"Le recordamos su %s, {{ clinic_name }} le espera.\"\n", typ)
			w("      on_timeout: front-desk\n")
			vars = append(vars, benchVar{name, typ, sensitive})
			w("    next: %s\n", id(i+1))
		case 9:
			d := last("date", sensitive)
			w("    say:\n      en: \"Section %s done. Your last visit was {{ format_date(%s) }}, {{ %s }} days ago.\"\n", topic, d, d+"_days")
			w("      es: \"Sección %s terminada. Su última visita fue el {{ format_date(%s, 'es') }}, hace {{ %s }} días.\"\n", topic, d, d+"_days")
			w("    wait: 10s\n    next: %s\n", id(i+1))
		}
	}
	w("  finish:\n    say:\n      en: \"All done! Thank you. {{ clinic_name }} will see you on {{ format_date(visit_day) }}.\"\n")
	w("      es: \"¡Listo! Gracias. {{ clinic_name }} le verá el {{ format_date(visit_day, 'es') }}.\"\n    end: true\n")
	w("  front-desk:\n    say:\n      en: \"A member of the front desk will text you shortly.\"\n")
	w("      es: \"Alguien de recepción le escribirá pronto.\"\n    handoff: front-desk\n")
	return []byte(b.String())
}

func TestGeneratedFlowIsValid(t *testing.T) {
	src := genFlow(200)
	if n := len(src); n < 110_000 || n > 150_000 {
		t.Errorf("the generated flow is %d bytes; the benchmark wants about 130 KB", n)
	}
	f, d := flows.Parse("bench.yaml", src)
	if len(d) > 0 {
		var b strings.Builder
		for _, x := range d {
			b.WriteString(x.Error() + "\n")
		}
		t.Fatalf("the generated flow has %d diagnostics:\n%s", len(d), b.String())
	}
	if len(f.Steps) != 202 {
		t.Errorf("got %d steps, want 202", len(f.Steps))
	}
	sensitive := 0
	for _, s := range f.Steps {
		if s.Sensitive {
			sensitive++
		}
	}
	if sensitive < 40 {
		t.Errorf("only %d sensitive steps", sensitive)
	}
}

// BenchmarkValidate measures a full load: YAML, model, compile of every
// expression and every static check.
func BenchmarkValidate(b *testing.B) {
	src := genFlow(200)
	if _, d := flows.Parse("bench.yaml", src); len(d) > 0 {
		b.Fatalf("the generated flow has diagnostics: %v", d)
	}
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		flows.Parse("bench.yaml", src)
	}
}

// BenchmarkParseYAML is the floor BenchmarkValidate is compared with: the
// same bytes into a yaml.Node and nothing else.
func BenchmarkParseYAML(b *testing.B) {
	src := genFlow(200)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		var n yaml.Node
		if err := yaml.Unmarshal(src, &n); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLargeFlowsLoadQuickly loads flows near MaxFileSize shaped to defeat
// any check that is quadratic in the number of steps, sets, expressions or
// diagnostics. Each took minutes before the checks were made linear.
func TestLargeFlowsLoadQuickly(t *testing.T) {
	if testing.Short() {
		t.Skip("loads several large flows")
	}
	const bound = 10 * time.Second
	tests := []struct {
		name string
		gen  func(b *strings.Builder)
	}{
		{"sets chained in reverse file order", func(b *strings.Builder) {
			b.WriteString("flow: big\nstart: s0\nsteps:\n")
			for i := 9000; i >= 0; i-- {
				fmt.Fprintf(b, "  s%d:\n    set: { v%d: v%d + 1 }\n    next: s%d\n", i, i+1, i, i+1)
			}
			b.WriteString("  s9001:\n    end: true\nvars:\n  v0: integer\n")
		}},
		{"questions in reverse file order", func(b *strings.Builder) {
			b.WriteString("flow: big\nstart: s0\nsteps:\n")
			for i := 6000; i > 0; i-- {
				fmt.Fprintf(b, "  s%d:\n    ask: { prompt: \"After {{ v%d }}?\", save: v%d }\n    next: s%d\n", i, i-1, i, i+1)
			}
			b.WriteString("  s0:\n    ask: { prompt: \"First?\", save: v0 }\n    next: s1\n  s6001:\n    end: true\n")
		}},
		{"a long chain echoing input after a sensitive step", func(b *strings.Builder) {
			b.WriteString("flow: big\nsecure: { link_message: \"{{ link }}\" }\nsteps:\n  s0:\n    sensitive: true\n    ask: { prompt: \"Why?\", save: why }\n    next: s1\n")
			for i := 1; i < 12000; i++ {
				fmt.Fprintf(b, "  s%d:\n    say: \"{{ input }}\"\n    next: s%d\n", i, i+1)
			}
			b.WriteString("  s12000:\n    end: true\n")
		}},
		{"many expressions in block scalars", func(b *strings.Builder) {
			b.WriteString("flow: big\nsteps:\n")
			for i := 0; i < 1500; i++ {
				fmt.Fprintf(b, "  s%d:\n    say: |\n", i)
				for j := 0; j < 5; j++ {
					b.WriteString("      line {{ nope }} and {{ 1 + 'x' }} and {{ nope }} and {{ 1 + 'x' }}\n")
				}
				fmt.Fprintf(b, "    next: s%d\n", i+1)
			}
			b.WriteString("  s1500:\n    end: true\n")
		}},
		{"one question with many choices", func(b *strings.Builder) {
			b.WriteString("flow: big\nsteps:\n  s:\n    ask:\n      prompt: Pick\n      type: choice\n      save: c\n      choices:\n")
			for i := 0; i < 18000; i++ {
				fmt.Fprintf(b, "        - { value: c%d, synonyms: [s%d, c%d] }\n", i, i, i+1)
			}
			b.WriteString("    end: true\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.gen(&b)
			src := []byte(b.String())
			if len(src) > flows.MaxFileSize {
				t.Fatalf("generated %d bytes, more than MaxFileSize", len(src))
			}
			start := time.Now()
			_, d := flows.Parse("big.yaml", src)
			var out strings.Builder
			diag.WriteText(&out, d, func(string) []byte { return src }, 0)
			if took := time.Since(start); took > bound {
				t.Errorf("Parse and WriteText of %d KB took %v (%d diagnostics); want under %v", len(src)/1024, took, len(d), bound)
			}
		})
	}
}
