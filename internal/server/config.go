// Package server wires safeflow together: configuration, the store, the
// flows registry, the engine, the channels, the secure chat, the outbox
// worker, timers, metrics and the HTTP routes (the only package that knows
// echo).
package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config is everything `safeflow serve` needs. Secrets come from the
// environment or a file, never from flags on a shared machine's process list
// or from the repository.
type Config struct {
	Addr      string `yaml:"addr"`
	FlowsDir  string `yaml:"flows"`
	DB        string `yaml:"db"`
	PublicURL string `yaml:"public_url"`
	KeysFile  string `yaml:"keys_file"`
	Dev       bool   `yaml:"dev"`

	TwilioAccountSID string `yaml:"twilio_account_sid"`
	TwilioAuthToken  string `yaml:"twilio_auth_token"`
	TwilioFrom       string `yaml:"twilio_from"`
	TwilioAPIURL     string `yaml:"twilio_api_url"`

	MessengerAppSecret   string `yaml:"messenger_app_secret"`
	MessengerVerifyToken string `yaml:"messenger_verify_token"`
	MessengerPageToken   string `yaml:"messenger_page_token"`
	MessengerAPIURL      string `yaml:"messenger_api_url"`

	// Region is the default phone region for numbers without a country code.
	Region string `yaml:"region"`
	// TimeZone is the clinic's IANA time zone, used to read dates.
	TimeZone string `yaml:"time_zone"`
	// DateOrder says how patients write numeric dates: "MDY" (3/4 is
	// March 4, the default) or "DMY" (3/4 is April 3).
	DateOrder string `yaml:"date_order"`
	// TrustedProxies lists the addresses (CIDRs, comma-separated) of the
	// reverse proxies in front of safeflow: for requests from them, the
	// client's address is taken from X-Forwarded-For. Empty: trust none.
	TrustedProxies string `yaml:"trusted_proxies"`
	// DeliveryParallel is how many contacts the outbox sends to at once,
	// 1 to 64; empty means 8 (see DeliveryParallelism).
	DeliveryParallel string `yaml:"delivery_parallel"`
}

// defaultDeliveryParallel and maxDeliveryParallel bound DeliveryParallel.
const defaultDeliveryParallel, maxDeliveryParallel = 8, 64

// DeliveryParallelism returns how many contacts the outbox sends to at
// once: DeliveryParallel, or 8. Check has refused anything else.
func (c Config) DeliveryParallelism() int {
	n, _ := c.deliveryParallel()
	return n
}

// deliveryParallel reads DeliveryParallel, 8 when empty; ok is false, and
// n 8, for anything but a whole number from 1 to 64.
func (c Config) deliveryParallel() (n int, ok bool) {
	v := strings.TrimSpace(c.DeliveryParallel)
	if v == "" {
		return defaultDeliveryParallel, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxDeliveryParallel {
		return defaultDeliveryParallel, false
	}
	return n, true
}

// envNames maps each setting to its environment variable.
var envNames = map[string]func(*Config) *string{
	"SAFEFLOW_ADDR":                   func(c *Config) *string { return &c.Addr },
	"SAFEFLOW_FLOWS":                  func(c *Config) *string { return &c.FlowsDir },
	"SAFEFLOW_DB":                     func(c *Config) *string { return &c.DB },
	"SAFEFLOW_PUBLIC_URL":             func(c *Config) *string { return &c.PublicURL },
	"SAFEFLOW_KEYS_FILE":              func(c *Config) *string { return &c.KeysFile },
	"SAFEFLOW_TWILIO_ACCOUNT_SID":     func(c *Config) *string { return &c.TwilioAccountSID },
	"SAFEFLOW_TWILIO_AUTH_TOKEN":      func(c *Config) *string { return &c.TwilioAuthToken },
	"SAFEFLOW_TWILIO_FROM":            func(c *Config) *string { return &c.TwilioFrom },
	"SAFEFLOW_TWILIO_API_URL":         func(c *Config) *string { return &c.TwilioAPIURL },
	"SAFEFLOW_MESSENGER_APP_SECRET":   func(c *Config) *string { return &c.MessengerAppSecret },
	"SAFEFLOW_MESSENGER_VERIFY_TOKEN": func(c *Config) *string { return &c.MessengerVerifyToken },
	"SAFEFLOW_MESSENGER_PAGE_TOKEN":   func(c *Config) *string { return &c.MessengerPageToken },
	"SAFEFLOW_MESSENGER_API_URL":      func(c *Config) *string { return &c.MessengerAPIURL },
	"SAFEFLOW_REGION":                 func(c *Config) *string { return &c.Region },
	"SAFEFLOW_TIME_ZONE":              func(c *Config) *string { return &c.TimeZone },
	"SAFEFLOW_DATE_ORDER":             func(c *Config) *string { return &c.DateOrder },
	"SAFEFLOW_TRUSTED_PROXIES":        func(c *Config) *string { return &c.TrustedProxies },
	"SAFEFLOW_DELIVERY_PARALLEL":      func(c *Config) *string { return &c.DeliveryParallel },
}

// Defaults returns the built-in settings.
func Defaults() Config {
	return Config{Addr: "127.0.0.1:8080", FlowsDir: "flows", DB: "safeflow.db", KeysFile: "safeflow.keys",
		TwilioAPIURL: "https://api.twilio.com", MessengerAPIURL: "https://graph.facebook.com", Region: "US"}
}

// LoadConfig builds the settings from the defaults, then an optional YAML
// file, then the environment. Flags are applied by the caller last.
func LoadConfig(file string, getenv func(string) string) (Config, error) {
	c := Defaults()
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("read config file: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("config file %s: %w", file, err)
		}
	}
	for name, field := range envNames {
		if v := getenv(name); v != "" {
			*field(&c) = v
		}
	}
	return c, nil
}

// Check refuses settings the service cannot run with, saying how to fix
// them. In dev mode missing keys and URLs get safe local defaults instead.
func (c *Config) Check() error {
	var problems []string
	if c.PublicURL == "" {
		if c.Dev {
			c.PublicURL = devURL(c.Addr)
		} else {
			problems = append(problems, "no public URL: set SAFEFLOW_PUBLIC_URL (or --public-url) to the https:// address patients and providers reach, e.g. https://chat.clinic.example")
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			problems = append(problems, fmt.Sprintf("the public URL %q is not an http(s) address", c.PublicURL))
		case u.Scheme != "https" && !c.Dev:
			problems = append(problems, "the public URL must start with https:// outside --dev: secure links must never travel over plain HTTP")
		}
		c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	}
	if !c.Dev {
		if _, err := os.Stat(c.KeysFile); err != nil {
			problems = append(problems, fmt.Sprintf("no key file at %s: create one with `safeflow keys generate --keys %s` (or set SAFEFLOW_KEYS_FILE)", c.KeysFile, c.KeysFile))
		}
	}
	if !c.Dev {
		// Outside dev mode a half-configured provider would take webhooks
		// and then dead-letter every reply (or the reverse).
		problems = append(problems, missing("Twilio", []setting{
			{"SAFEFLOW_TWILIO_ACCOUNT_SID", c.TwilioAccountSID}, {"SAFEFLOW_TWILIO_AUTH_TOKEN", c.TwilioAuthToken},
			{"SAFEFLOW_TWILIO_FROM", c.TwilioFrom}})...)
		problems = append(problems, missing("Messenger", []setting{
			{"SAFEFLOW_MESSENGER_APP_SECRET", c.MessengerAppSecret}, {"SAFEFLOW_MESSENGER_VERIFY_TOKEN", c.MessengerVerifyToken},
			{"SAFEFLOW_MESSENGER_PAGE_TOKEN", c.MessengerPageToken}})...)
	}
	switch strings.ToUpper(c.DateOrder) {
	case "", "MDY", "DMY":
	default:
		problems = append(problems, fmt.Sprintf("the date order %q is not MDY or DMY: set SAFEFLOW_DATE_ORDER to MDY (3/4 is March 4) or DMY (3/4 is April 3)", c.DateOrder))
	}
	if c.FlowsDir == "" {
		problems = append(problems, "no flows folder: set SAFEFLOW_FLOWS (or --flows)")
	}
	if _, ok := c.deliveryParallel(); !ok {
		problems = append(problems, fmt.Sprintf("SAFEFLOW_DELIVERY_PARALLEL %q is not a whole number from 1 to %d: it is how many patients the outbox sends to at once (%d when unset)",
			c.DeliveryParallel, maxDeliveryParallel, defaultDeliveryParallel))
	}
	if len(problems) > 0 {
		return errors.New("cannot start:\n  - " + strings.Join(problems, "\n  - "))
	}
	return nil
}

// devURL is the public URL dev mode assumes: the listen address, with a
// wildcard host (":8080", "0.0.0.0:8080") read as localhost so that links
// work in the browser.
func devURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// setting is one configuration value and the variable that sets it.
type setting struct{ env, value string }

// missing names the settings a provider still needs when some of its
// settings are given and others are not. It never shows a value.
func missing(provider string, settings []setting) []string {
	var set, unset []string
	for _, s := range settings {
		if s.value == "" {
			unset = append(unset, s.env)
		} else {
			set = append(set, s.env)
		}
	}
	if len(set) == 0 || len(unset) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s is half configured: %s given but %s missing; set all of them, or none to turn %s off",
		provider, strings.Join(set, ", "), strings.Join(unset, ", "), provider)}
}
