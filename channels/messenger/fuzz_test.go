package messenger

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/safeflow/safeflow/engine"
)

// FuzzParse feeds the webhook parser arbitrary bodies, seeded with the raw
// Meta payloads in testdata/. It must never panic, and whatever it returns
// must be a well-formed message from a person.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"postback":{"payload":"x"}}]}]}`))
	f.Add([]byte(`{"object":"page","entry":[{"messaging":[{"sender":{"id":"2"},"timestamp":1e400,"message":{"text":"x"}}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := parse(body)
		if err != nil && msgs != nil {
			t.Fatalf("messages returned with an error")
		}
		for _, in := range msgs {
			if in.Channel != engine.Messenger || in.Address == "" || in.ProviderID == "" {
				t.Fatalf("incomplete inbound: %+v", in)
			}
		}
	})
}

// FuzzHandler posts arbitrary signed bodies through the whole handler: the
// answer is always 200 or 400, and the sink only ever sees complete
// messages.
func FuzzHandler(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	h := Handler(Config{AppSecret: "fuzz"}, func(_ context.Context, in engine.Inbound) error {
		if in.Address == "" || in.ProviderID == "" {
			return errors.New("incomplete inbound")
		}
		return nil
	})
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.Header.Set(SignatureHeader, Signature("fuzz", body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d for a signed body", w.Code)
		}
	})
}
