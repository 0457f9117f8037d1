package main

import (
	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/schema"
)

func schemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of flow files (for editor autocompletion)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(schema.FlowJSON)
			return err
		},
	}
}
