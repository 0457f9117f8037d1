package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/safeflow/safeflow/engine/memstore"
	"github.com/safeflow/safeflow/internal/pgtest"
	"github.com/safeflow/safeflow/internal/seal"
	"github.com/safeflow/safeflow/internal/store"
	"github.com/safeflow/safeflow/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// newRing returns a fresh key ring.
func newRing(t *testing.T) *seal.Ring {
	t.Helper()
	ring, err := seal.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// openSQLite opens a store on a new SQLite file and returns it with the
// file's path.
func openSQLite(t *testing.T, ring *seal.Ring) (*store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "safeflow.db")
	return openDSN(t, "sqlite:"+path, ring), path
}

// openPostgres opens a store on a new database of the shared PostgreSQL
// server and returns it with the database's URL.
func openPostgres(t *testing.T, ring *seal.Ring) (*store.Store, string) {
	t.Helper()
	url := pgtest.Shared(t).CreateDB(t, "")
	return openDSN(t, url, ring), url
}

func openDSN(t *testing.T, dsn string, ring *seal.Ring) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, ring)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// backends are the SQL stores, each opened on a new, empty database.
var backends = []struct {
	name string
	open func(t *testing.T, ring *seal.Ring) (*store.Store, string)
}{
	{"SQLite", openSQLite},
	{"PostgreSQL", openPostgres},
}

func TestSuite(t *testing.T) {
	t.Run("Memstore", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) storetest.Store { return storetest.Memstore{Store: memstore.New()} })
	})
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) storetest.Store {
				s, _ := b.open(t, newRing(t))
				return s
			})
		})
	}
}

// Warming a PostgreSQL store's pool, as the service does at start, leaves
// connections ready in it, so the first messages do not open them.
func TestPostgresPoolWarm(t *testing.T) {
	s, _ := openPostgres(t, newRing(t))
	s.WarmPool(context.Background())
	if idle := s.DB().Stats().Idle; idle < 8 {
		t.Errorf("%d idle connections after WarmPool, want at least 8", idle)
	}
}
