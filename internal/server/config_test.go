package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/internal/server"
)

func TestLoadConfigPrecedence(t *testing.T) {
	tests := []struct {
		Label         string
		File          string // contents of the config file; none when empty
		Env           map[string]string
		ExpectedAddr  string
		ExpectedURL   string
		ExpectedDB    string
		ExpectedError string
	}{
		{Label: "Defaults", ExpectedAddr: "127.0.0.1:8080", ExpectedURL: "", ExpectedDB: "safeflow.db"},
		{
			Label:        "FileOverDefaults",
			File:         "addr: 127.0.0.1:9000\npublic_url: https://file.example\n",
			ExpectedAddr: "127.0.0.1:9000", ExpectedURL: "https://file.example", ExpectedDB: "safeflow.db",
		},
		{
			Label:        "EnvOverFile",
			File:         "addr: 127.0.0.1:9000\npublic_url: https://file.example\ndb: file.db\n",
			Env:          map[string]string{"SAFEFLOW_PUBLIC_URL": "https://env.example", "SAFEFLOW_DB": "env.db"},
			ExpectedAddr: "127.0.0.1:9000", ExpectedURL: "https://env.example", ExpectedDB: "env.db",
		},
		{
			Label:        "EmptyEnvKeepsFile",
			File:         "public_url: https://file.example\n",
			Env:          map[string]string{"SAFEFLOW_PUBLIC_URL": ""},
			ExpectedAddr: "127.0.0.1:8080", ExpectedURL: "https://file.example", ExpectedDB: "safeflow.db",
		},
		{Label: "ErrUnknownKey", File: "public_ulr: https://file.example\n", ExpectedError: "field public_ulr not found"},
		{Label: "ErrNotYAML", File: "addr: [\n", ExpectedError: "config file"},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			file := ""
			if tt.File != "" {
				file = filepath.Join(t.TempDir(), "safeflow.yaml")
				writeFile(t, file, tt.File)
			}
			cfg, err := server.LoadConfig(file, func(k string) string { return tt.Env[k] })
			if tt.ExpectedError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.ExpectedError) {
					t.Fatalf("err = %v; want one with %q", err, tt.ExpectedError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Addr != tt.ExpectedAddr || cfg.PublicURL != tt.ExpectedURL || cfg.DB != tt.ExpectedDB {
				t.Errorf("addr %q, public URL %q, db %q; want %q, %q, %q", cfg.Addr, cfg.PublicURL, cfg.DB,
					tt.ExpectedAddr, tt.ExpectedURL, tt.ExpectedDB)
			}
		})
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := server.LoadConfig(filepath.Join(t.TempDir(), "nope.yaml"), func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "read config file") {
		t.Fatalf("err = %v; want read config file", err)
	}
}

// TestCheck covers what `safeflow serve` refuses to start with, and the
// defaults dev mode fills in.
func TestCheck(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "safeflow.keys")
	writeFile(t, keys, "not read by Check")
	prod := func(edit func(*server.Config)) server.Config {
		c := server.Defaults()
		c.PublicURL, c.KeysFile, c.FlowsDir = "https://chat.clinic.example/", keys, "flows"
		if edit != nil {
			edit(&c)
		}
		return c
	}
	tests := []struct {
		Label          string
		Config         server.Config
		ExpectedErrors []string // each must be in the error; none means it starts
		Secrets        []string // must not be in the error
		ExpectedURL    string
	}{
		{Label: "Production", Config: prod(nil), ExpectedURL: "https://chat.clinic.example"},
		{
			Label:          "ErrNoPublicURL",
			Config:         prod(func(c *server.Config) { c.PublicURL = "" }),
			ExpectedErrors: []string{"cannot start", "no public URL: set SAFEFLOW_PUBLIC_URL (or --public-url)"},
		},
		{
			Label:          "ErrPlainHTTP",
			Config:         prod(func(c *server.Config) { c.PublicURL = "http://chat.clinic.example" }),
			ExpectedErrors: []string{"must start with https:// outside --dev"},
		},
		{
			Label:          "ErrNotAURL",
			Config:         prod(func(c *server.Config) { c.PublicURL = "chat.clinic.example" }),
			ExpectedErrors: []string{`"chat.clinic.example" is not an http(s) address`},
		},
		{
			Label:          "ErrNoKeyFile",
			Config:         prod(func(c *server.Config) { c.KeysFile = filepath.Join(filepath.Dir(keys), "missing.keys") }),
			ExpectedErrors: []string{"no key file at", "safeflow keys generate --keys"},
		},
		{Label: "DateOrderDMY", Config: prod(func(c *server.Config) { c.DateOrder = "dmy" }), ExpectedURL: "https://chat.clinic.example"},
		{
			Label:          "ErrDateOrder",
			Config:         prod(func(c *server.Config) { c.DateOrder = "YMD" }),
			ExpectedErrors: []string{`the date order "YMD" is not MDY or DMY`, "SAFEFLOW_DATE_ORDER"},
		},
		{Label: "DeliveryParallel", Config: prod(func(c *server.Config) { c.DeliveryParallel = "32" }), ExpectedURL: "https://chat.clinic.example"},
		{
			Label:          "ErrDeliveryParallel",
			Config:         prod(func(c *server.Config) { c.DeliveryParallel = "0" }),
			ExpectedErrors: []string{`SAFEFLOW_DELIVERY_PARALLEL "0" is not a whole number from 1 to 64`, "8 when unset"},
		},
		{
			Label:          "ErrDeliveryParallelNotANumber",
			Config:         prod(func(c *server.Config) { c.DeliveryParallel = "lots" }),
			ExpectedErrors: []string{`SAFEFLOW_DELIVERY_PARALLEL "lots"`},
		},
		{
			Label:          "ErrNoFlows",
			Config:         prod(func(c *server.Config) { c.FlowsDir = "" }),
			ExpectedErrors: []string{"no flows folder: set SAFEFLOW_FLOWS"},
		},
		{
			Label: "ErrHalfTwilio",
			Config: prod(func(c *server.Config) {
				c.TwilioAccountSID, c.TwilioAuthToken = "AC0123456789abcdef", "twilio-token-secret"
			}),
			ExpectedErrors: []string{"Twilio is half configured", "SAFEFLOW_TWILIO_FROM missing"},
			Secrets:        []string{"twilio-token-secret", "AC0123456789abcdef"},
		},
		{
			Label:          "ErrHalfMessenger",
			Config:         prod(func(c *server.Config) { c.MessengerAppSecret = "meta-app-secret" }),
			ExpectedErrors: []string{"Messenger is half configured", "SAFEFLOW_MESSENGER_VERIFY_TOKEN, SAFEFLOW_MESSENGER_PAGE_TOKEN missing"},
			Secrets:        []string{"meta-app-secret"},
		},
		{
			Label: "ErrEverythingAtOnce",
			Config: prod(func(c *server.Config) {
				c.PublicURL, c.KeysFile = "", filepath.Join(filepath.Dir(keys), "missing.keys")
			}),
			ExpectedErrors: []string{"no public URL", "no key file"},
		},
		{
			Label:       "DevNeedsNoKeysOrURL",
			Config:      server.Config{Addr: "127.0.0.1:8081", FlowsDir: "flows", KeysFile: "missing.keys", Dev: true},
			ExpectedURL: "http://127.0.0.1:8081",
		},
		{
			Label:       "DevWildcardAddrIsLocalhost",
			Config:      server.Config{Addr: ":8081", FlowsDir: "flows", Dev: true},
			ExpectedURL: "http://localhost:8081",
		},
		{
			Label:       "DevAllowsHalfProviders",
			Config:      server.Config{Addr: "0.0.0.0:8081", FlowsDir: "flows", Dev: true, TwilioAuthToken: "t"},
			ExpectedURL: "http://localhost:8081",
		},
	}
	for _, tt := range tests {
		t.Run(tt.Label, func(t *testing.T) {
			c := tt.Config
			err := c.Check()
			if len(tt.ExpectedErrors) == 0 {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if c.PublicURL != tt.ExpectedURL {
					t.Errorf("public URL = %q; want %q", c.PublicURL, tt.ExpectedURL)
				}
				return
			}
			if err == nil {
				t.Fatal("Check accepted the configuration")
			}
			for _, want := range tt.ExpectedErrors {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			for _, secret := range tt.Secrets {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

func TestNewRefusesBadConfigBeforeTouchingDisk(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Defaults()
	cfg.FlowsDir, cfg.DB, cfg.KeysFile = examples, filepath.Join(dir, "safeflow.db"), filepath.Join(dir, "safeflow.keys")
	log, _ := newLog()
	_, err := server.New(context.Background(), cfg, log)
	if err == nil || !strings.Contains(err.Error(), "no public URL") || !strings.Contains(err.Error(), "no key file") {
		t.Fatalf("err = %v; want the public URL and key file refused", err)
	}
	for _, f := range []string{cfg.DB, cfg.KeysFile} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was created by a server that refused to start", f)
		}
	}
}
