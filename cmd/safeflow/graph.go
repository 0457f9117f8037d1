package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/flows"
	"github.com/safeflow/safeflow/flows/diag"
)

func init() { extraCommands = append(extraCommands, graphCmd) }

// graphFormats maps each --format value to the flow's writer for it.
var graphFormats = map[string]func(*flows.Flow) string{
	"mermaid": (*flows.Flow).Mermaid,
	"dot":     (*flows.Flow).DOT,
}

func graphCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph [--format mermaid|dot] FILE",
		Short: "Draw a flow as a diagram (Mermaid or Graphviz DOT)",
		Long: `Draw a flow as a diagram: every step with its question, the guards on the
arrows, sensitive steps marked with a lock and a red fill, end steps with a
double border, and keyword jumps as dashed arrows.

Mermaid (the default) can be pasted into GitHub or GitLab Markdown inside a
` + "```mermaid" + ` block. DOT is for Graphviz:

    safeflow graph --format dot intake.yaml | dot -Tpng -o intake.png

Exit codes: 0 the diagram was printed, 1 the flow has errors (they are
printed instead), 2 bad usage or a file that cannot be read.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("graph: give exactly one flow file (see `safeflow graph --help`)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			write, ok := graphFormats[format]
			if !ok {
				return usagef("--format must be mermaid or dot, not %q", format)
			}
			set, err := flows.LoadFiles(args)
			if err != nil {
				return usageError{err}
			}
			// Warnings do not stop the drawing, but the author should see
			// them; stderr keeps them out of a piped diagram.
			diag.WriteText(cmd.ErrOrStderr(), set.Diags, set.Source, 0)
			if set.Diags.Errors() > 0 {
				return failed{exitFail}
			}
			for _, f := range set.Flows {
				_, err := io.WriteString(cmd.OutOrStdout(), write(f))
				return err
			}
			return usagef("%s holds no flow", args[0])
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "diagram syntax: mermaid or dot")
	return cmd
}
