package messenger_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/channels/messenger"
)

// vector is one case of shared/vectors/messenger-signature.json.
type vector struct {
	Name      string `json:"name"`
	AppSecret string `json:"app_secret"`
	Body      string `json:"body"`
	Header    string `json:"header"`
}

// loadVectors reads the shared signature vectors. A missing file fails the
// test: skipping would let a broken signature check pass unnoticed.
func loadVectors(t *testing.T) []vector {
	t.Helper()
	dir := os.Getenv("SAFEFLOW_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "vectors")
		if _, err := os.Stat(dir); err != nil {
			dir = filepath.Join("..", "..", "testdata", "vectors") // the repository's copy
		}
	}
	path := filepath.Join(dir, "messenger-signature.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("signature vectors missing: %v (set SAFEFLOW_VECTORS to the folder holding messenger-signature.json)", err)
	}
	var f struct {
		Cases []vector `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		t.Fatalf("%s holds no cases", path)
	}
	return f.Cases
}

func TestSignatureVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			if got := messenger.Signature(v.AppSecret, []byte(v.Body)); got != v.Header {
				t.Errorf("Signature = %q, want %q", got, v.Header)
			}
			if !messenger.Valid(v.AppSecret, []byte(v.Body), v.Header) {
				t.Errorf("Valid rejects the published header")
			}
		})
	}
}

// TestValidRejects derives wrong headers from every vector: each must fail.
func TestValidRejects(t *testing.T) {
	for _, v := range loadVectors(t) {
		hexMAC := strings.TrimPrefix(v.Header, "sha256=")
		flipped := hexMAC[:len(hexMAC)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", hexMAC[len(hexMAC)-1])+1)%16])
		cases := []struct {
			Label    string
			Secret   string
			Body     string
			Header   string
			Expected bool
		}{
			{Label: "published", Secret: v.AppSecret, Body: v.Body, Header: v.Header, Expected: true},
			{Label: "upper-case hex is the same MAC", Secret: v.AppSecret, Body: v.Body, Header: "sha256=" + strings.ToUpper(hexMAC), Expected: true},
			{Label: "last hex digit changed", Secret: v.AppSecret, Body: v.Body, Header: "sha256=" + flipped},
			{Label: "body with a trailing space", Secret: v.AppSecret, Body: v.Body + " ", Header: v.Header},
			{Label: "body with a trailing newline", Secret: v.AppSecret, Body: v.Body + "\n", Header: v.Header},
			{Label: "other secret", Secret: v.AppSecret + "x", Body: v.Body, Header: v.Header},
			{Label: "empty secret", Secret: "", Body: v.Body, Header: messenger.Signature("", []byte(v.Body))},
			{Label: "no prefix", Secret: v.AppSecret, Body: v.Body, Header: hexMAC},
			{Label: "sha1 prefix", Secret: v.AppSecret, Body: v.Body, Header: "sha1=" + hexMAC},
			{Label: "prefix in capitals", Secret: v.AppSecret, Body: v.Body, Header: "SHA256=" + hexMAC},
			{Label: "truncated", Secret: v.AppSecret, Body: v.Body, Header: v.Header[:len(v.Header)-2]},
			{Label: "extended", Secret: v.AppSecret, Body: v.Body, Header: v.Header + "00"},
			{Label: "not hex", Secret: v.AppSecret, Body: v.Body, Header: "sha256=" + strings.Repeat("zz", 32)},
			{Label: "empty header", Secret: v.AppSecret, Body: v.Body, Header: ""},
			{Label: "space before MAC", Secret: v.AppSecret, Body: v.Body, Header: "sha256= " + hexMAC[1:]},
		}
		for _, c := range cases {
			t.Run(v.Name+"/"+c.Label, func(t *testing.T) {
				if got := messenger.Valid(c.Secret, []byte(c.Body), c.Header); got != c.Expected {
					t.Errorf("Valid = %v, want %v", got, c.Expected)
				}
			})
		}
	}
}
