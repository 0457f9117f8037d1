package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/engine"
	"github.com/safeflow/safeflow/engine/answer"
	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
	"github.com/safeflow/safeflow/internal/sim"
)

func init() { extraCommands = append(extraCommands, chatCmd) }

func chatCmd() *cobra.Command {
	var channel, lang string
	var vars []string
	cmd := &cobra.Command{
		Use:   "chat FLOW.yaml [--channel sms|messenger] [--var name=value]...",
		Short: "Talk to a flow in the terminal, as a patient would",
		Long: `Talk to a flow in the terminal, as a patient would. Every bot line shows its
channel: [sms] or [messenger] for the patient's phone, [secure] for the secure
web chat. When the flow sends a secure link, the page "opens" at once and what
you type next is typed there, until the flow returns to SMS or Messenger.

Lines that start with / are commands:
  /wait 2h     let time pass (reminders, timeouts and waits fire)
  /handback    an agent hands a handed-off chat back to the bot
  /sms TEXT    type on SMS (or Messenger) even while the secure page is open
  /quit        stop

Input can be piped: printf 'yes\nAna\n' | safeflow chat intake.yaml`,
		Args: needArgs(1, "a flow file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ch := engine.Channel(channel)
			if !ch.IsOrigin() {
				return usagef("--channel must be sms or messenger, not %q", channel)
			}
			set, err := flows.LoadFiles(args[:1])
			if err != nil {
				return usageError{err}
			}
			if set.Diags.Errors() > 0 {
				diag.WriteText(cmd.ErrOrStderr(), set.Diags, set.Source, 10)
				return failed{exitFail}
			}
			var f *flows.Flow
			for _, fl := range set.Flows {
				f = fl
			}
			start, err := parseVars(f, vars)
			if err != nil {
				return usageError{err}
			}
			c := &chat{out: cmd.OutOrStdout(), in: bufio.NewScanner(cmd.InOrStdin()), flow: f}
			c.sim = sim.New(set, ch, time.Now().Truncate(time.Minute))
			if lang != "" {
				start["language"] = lang
			}
			return c.run(cmd.Context(), start)
		},
	}
	cmd.Flags().StringVar(&channel, "channel", "sms", "the patient's channel: sms or messenger")
	cmd.Flags().StringVar(&lang, "lang", "", "the patient's language, for flows written in several")
	cmd.Flags().StringArrayVar(&vars, "var", nil, "a value the clinic supplies when it starts the flow, as name=value")
	return cmd
}

// parseVars reads --var name=value pairs as the flow's declared types.
func parseVars(f *flows.Flow, pairs []string) (map[string]any, error) {
	out := map[string]any{}
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return nil, fmt.Errorf("--var %q: write it as name=value", p)
		}
		v := f.Variables[name]
		if v == nil {
			return nil, fmt.Errorf("--var %q: the flow has no variable %q", p, name)
		}
		typ := v.Type
		if flows.GoTypeOf(typ) == nil {
			typ = flows.TypeText
		}
		parsed, err := answer.Parse(typ, value, &answer.Options{Now: time.Now()})
		if err != nil {
			return nil, fmt.Errorf("--var %q: %v", p, err)
		}
		out[name] = parsed
	}
	return out, nil
}

// chat drives one simulated conversation from lines of input.
type chat struct {
	sim  *sim.Sim
	flow *flows.Flow
	out  io.Writer
	in   *bufio.Scanner
}

func (c *chat) run(ctx context.Context, vars map[string]any) error {
	if ctx == nil {
		ctx = context.Background()
	}
	fmt.Fprintf(c.out, "chatting with flow %s on %s — type /quit to stop\n", c.flow.ID, c.sim.Channel)
	res, err := c.sim.Start(ctx, c.flow.ID, "", vars)
	if err != nil {
		return err
	}
	if err := c.show(ctx, res.Out); err != nil {
		return endOfInput(err)
	}
	for {
		conv := c.sim.Current()
		if conv != nil && conv.Status == engine.Ended {
			fmt.Fprintln(c.out, "(the conversation has ended)")
			return nil
		}
		line, ok := c.read()
		if !ok {
			return nil
		}
		out, err := c.do(ctx, line, conv)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			fmt.Fprintf(c.out, "(%v)\n", err)
			continue
		}
		if err := c.show(ctx, out); err != nil {
			return endOfInput(err)
		}
	}
}

// read returns the next line, echoing it so piped transcripts read well.
func (c *chat) read() (string, bool) {
	if !c.in.Scan() {
		return "", false
	}
	line := c.in.Text()
	fmt.Fprintf(c.out, "> %s\n", line)
	return line, true
}

func (c *chat) do(ctx context.Context, line string, conv *engine.Conversation) ([]*engine.Outbound, error) {
	cmdName, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	switch cmdName {
	case "/quit":
		return nil, io.EOF
	case "/wait":
		d, err := time.ParseDuration(arg)
		if err != nil {
			return nil, fmt.Errorf("write /wait with a length of time, such as /wait 2h")
		}
		return c.sim.Advance(ctx, d)
	case "/handback":
		res, err := c.sim.HandBack(ctx)
		if err != nil {
			return nil, err
		}
		return res.Out, nil
	case "/sms":
		res, err := c.sim.Send(ctx, c.sim.Channel, arg)
		if err != nil {
			return nil, err
		}
		return res.Out, nil
	}
	ch := c.sim.Channel
	if conv != nil && conv.Secure == engine.SecureOpen {
		ch = engine.Secure
	}
	res, err := c.sim.Send(ctx, ch, line)
	if err != nil {
		return nil, err
	}
	return res.Out, nil
}

// show prints bot lines; a secure link is opened at once.
func (c *chat) show(ctx context.Context, out []*engine.Outbound) error {
	for _, o := range out {
		fmt.Fprintf(c.out, "[%s] %s\n", o.Channel, o.Text)
		if len(o.Choices) > 0 {
			titles := make([]string, len(o.Choices))
			for i, ch := range o.Choices {
				titles[i] = ch.Title
			}
			fmt.Fprintf(c.out, "[%s]   buttons: %s\n", o.Channel, strings.Join(titles, " | "))
		}
		if o.Link {
			more, err := c.open(ctx)
			if err != nil {
				return err
			}
			if err := c.show(ctx, more); err != nil {
				return err
			}
		}
	}
	return nil
}

// open simulates the patient opening the secure link, with the identity
// check when the flow has one.
func (c *chat) open(ctx context.Context) ([]*engine.Outbound, error) {
	fmt.Fprintln(c.out, "(the patient opens the secure link)")
	v := c.flow.Secure.Verify
	for tries := 0; v != nil; tries++ {
		if tries == 5 {
			fmt.Fprintln(c.out, "[secure] Too many tries: this link is locked. The clinic has been told.")
			return nil, io.EOF
		}
		fmt.Fprintf(c.out, "[secure] %s\n", v.Prompt.Text[pickLang(v.Prompt, c.flow.Language)].Literal())
		line, ok := c.read()
		if !ok {
			return nil, io.EOF
		}
		pass, err := c.sim.Engine.CheckIdentity(ctx, c.sim.Conversation, line)
		if err != nil {
			return nil, err
		}
		if pass {
			break
		}
		fmt.Fprintln(c.out, "[secure] That doesn't match our records. Please try again.")
	}
	res, err := c.sim.Engine.SecureOpened(ctx, c.sim.Conversation)
	if err != nil {
		return nil, err
	}
	return res.Out, nil
}

// pickLang returns the message's language key to show.
func pickLang(m *flows.Message, lang string) string {
	if _, ok := m.Text[lang]; ok {
		return lang
	}
	for k := range m.Text {
		if k == "" {
			return k
		}
	}
	for k := range m.Text {
		return k
	}
	return ""
}

// endOfInput treats running out of input (or a locked link, which ends the
// chat) as the normal end of a chat.
func endOfInput(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}
