package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/safeflow/safeflow/internal/server"
)

func init() { extraCommands = append(extraCommands, serveCmd) }

func serveCmd() *cobra.Command {
	var configFile string
	var debug bool
	flagCfg := server.Config{}
	cmd := &cobra.Command{
		Use:   "serve [--addr 127.0.0.1:8080] [--flows DIR] [--db URL] [--public-url URL] [--dev]",
		Short: "Run the chat service",
		Long: `Run the chat service: provider webhooks, the secure web chat, delivery of
replies, timers, health checks and metrics. Settings come from an optional
--config file, then the environment (SAFEFLOW_ADDR, SAFEFLOW_FLOWS, SAFEFLOW_DB,
SAFEFLOW_PUBLIC_URL, SAFEFLOW_KEYS_FILE, SAFEFLOW_TWILIO_*, SAFEFLOW_MESSENGER_*),
then flags; a flag wins over its variable.

With --dev, a phone simulator is served at / (open it in a browser), a local
key file is created if there is none, and the database defaults to a SQLite
file in the working directory.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := server.LoadConfig(configFile, os.Getenv)
			if err != nil {
				return usageError{err}
			}
			f := cmd.Flags()
			for name, dst := range map[string]*string{"addr": &cfg.Addr, "flows": &cfg.FlowsDir, "db": &cfg.DB, "public-url": &cfg.PublicURL} {
				if f.Changed(name) {
					v, _ := f.GetString(name)
					*dst = v
				}
			}
			if f.Changed("dev") {
				cfg.Dev = flagCfg.Dev
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(server.NewRedactingHandler(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, cfg, log)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "safeflow: %v\n", err)
				return failed{exitFail}
			}
			defer srv.Close()
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "safeflow: cannot listen on %s: %v\n", cfg.Addr, err)
				return failed{exitFail}
			}
			if cfg.Dev {
				fmt.Fprintf(cmd.OutOrStdout(), "safeflow is running. Open http://%s/ for the phone simulator. Press Ctrl-C to stop.\n", ln.Addr())
			}
			return srv.Run(ctx, ln)
		},
	}
	fl := cmd.Flags()
	fl.String("addr", "127.0.0.1:8080", "address to listen on (SAFEFLOW_ADDR)")
	fl.String("flows", "flows", "folder of flow files, watched for changes (SAFEFLOW_FLOWS)")
	fl.String("db", "safeflow.db", "SQLite file, sqlite:PATH or postgres:// URL (SAFEFLOW_DB)")
	fl.String("public-url", "", "the https:// address patients and providers reach (SAFEFLOW_PUBLIC_URL)")
	fl.BoolVar(&flagCfg.Dev, "dev", false, "development mode: phone simulator at /, local keys, SQLite")
	fl.StringVar(&configFile, "config", "", "optional YAML file of settings")
	fl.BoolVar(&debug, "debug", false, "log every request (by route, never by path)")
	return cmd
}
