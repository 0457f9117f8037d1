package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// A WireCounter is a TCP proxy on 127.0.0.1 in front of a PostgreSQL
// server that reads the client's side of the wire protocol and counts round
// trips (each Sync of the extended protocol and each simple Query waits for
// the server) and the statements sent, by their SQL text. Parameters travel
// in Bind messages, which it does not read, so it never sees patient data.
//
// It gives the figure that matters for latency without touching the server
// or the code under test: pg_stat_statements counts statements, not round
// trips, and needs a restart to load.
type WireCounter struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	bySQL map[string]*StatementStats
	trips int
	txs   int
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// StatementStats counts one SQL text.
type StatementStats struct {
	// SQL is the statement, with runs of white space made one space and
	// cut to 100 characters.
	SQL string
	// Executions counts Execute messages and simple queries.
	Executions int
	// RoundTrips counts the waits for the server spent on it.
	RoundTrips int
}

// WireStats is a snapshot of a WireCounter.
type WireStats struct {
	RoundTrips int
	Executions int
	// Transactions counts transactions that ran a statement: explicit
	// ones and statements run on their own, each its own transaction.
	Transactions int
	// Statements are sorted by round trips, most first.
	Statements []StatementStats
}

// NewWireCounter starts a counter that forwards to target, a host:port.
func NewWireCounter(target string) (*WireCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("wire counter: %w", err)
	}
	c := &WireCounter{ln: ln, target: target, bySQL: map[string]*StatementStats{}, conns: map[net.Conn]struct{}{}}
	c.wg.Go(c.accept)
	return c, nil
}

// ErrEncrypted is returned by Rewrite for a connection that may use TLS,
// whose messages the counter cannot read.
var ErrEncrypted = errors.New("wire counter: round trips can only be counted with sslmode=disable")

// Rewrite returns dsn, a postgres:// URL, pointing at the counter instead
// of its server. The URL must ask for sslmode=disable.
func (c *WireCounter) Rewrite(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("wire counter: the database is not a postgres:// URL")
	}
	if u.Query().Get("sslmode") != "disable" {
		return "", ErrEncrypted
	}
	u.Host = c.ln.Addr().String()
	return u.String(), nil
}

// PostgresAddr returns the host:port of the PostgreSQL server in dsn.
func PostgresAddr(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "", errors.New("wire counter: the database URL has no host")
	}
	if u.Port() == "" {
		return net.JoinHostPort(u.Hostname(), "5432"), nil
	}
	return u.Host, nil
}

// Reset sets every count to zero.
func (c *WireCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bySQL, c.trips, c.txs = map[string]*StatementStats{}, 0, 0
}

// Stats returns the counts so far.
func (c *WireCounter) Stats() WireStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := WireStats{RoundTrips: c.trips, Transactions: c.txs}
	for _, s := range c.bySQL {
		st.Executions += s.Executions
		st.Statements = append(st.Statements, *s)
	}
	slices.SortFunc(st.Statements, func(a, b StatementStats) int {
		if a.RoundTrips != b.RoundTrips {
			return b.RoundTrips - a.RoundTrips
		}
		return strings.Compare(a.SQL, b.SQL)
	})
	return st
}

// Close stops accepting, cuts every proxied connection and waits for them.
func (c *WireCounter) Close() error {
	err := c.ln.Close()
	c.mu.Lock()
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
	return err
}

func (c *WireCounter) accept() {
	for {
		client, err := c.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", c.target)
		if err != nil {
			client.Close()
			continue
		}
		c.mu.Lock()
		c.conns[client], c.conns[server] = struct{}{}, struct{}{}
		c.mu.Unlock()
		p := &pgConn{}
		c.wg.Go(func() {
			_ = c.back(client, server, p)
			client.Close()
		})
		c.wg.Go(func() {
			_ = c.forward(server, client, p)
			server.Close()
			c.mu.Lock()
			delete(c.conns, client)
			delete(c.conns, server)
			c.mu.Unlock()
		})
	}
}

// Frontend protocol codes of the untyped first messages.
const (
	sslRequest    = 80877103
	gssEncRequest = 80877104
)

// pgConn is what the two directions of one proxied connection share.
type pgConn struct {
	mu sync.Mutex
	// sslAnswers counts SSL or GSS requests not yet answered: the server
	// answers each with one untyped byte.
	sslAnswers int
	// executed is true when a statement ran since the server last
	// reported no transaction open.
	executed bool
}

// back copies the server's messages to the client, counting a transaction
// each time the server reports it is out of a transaction (ReadyForQuery
// with status I) after a statement ran.
func (c *WireCounter) back(client io.Writer, server io.Reader, p *pgConn) error {
	r := bufio.NewReaderSize(server, 64<<10)
	var head [5]byte
	for {
		p.mu.Lock()
		ssl := p.sslAnswers > 0
		if ssl {
			p.sslAnswers--
		}
		p.mu.Unlock()
		if ssl {
			if _, err := io.ReadFull(r, head[:1]); err != nil {
				return err
			}
			if _, err := client.Write(head[:1]); err != nil {
				return err
			}
			continue
		}
		if _, err := io.ReadFull(r, head[:5]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[1:5]))
		if n < 4 || n > 1<<30 {
			return errors.New("wire counter: bad message length from the server")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		if head[0] == 'Z' && len(body) == 1 && body[0] == 'I' {
			p.mu.Lock()
			ended := p.executed
			p.executed = false
			p.mu.Unlock()
			if ended {
				c.mu.Lock()
				c.txs++
				c.mu.Unlock()
			}
		}
		if _, err := client.Write(append(head[:5:5], body...)); err != nil {
			return err
		}
	}
}

// forward copies the client's messages to the server, counting them. Each
// message is counted before it is sent, so before the server can answer.
func (c *WireCounter) forward(server io.Writer, client io.Reader, p *pgConn) error {
	r := bufio.NewReaderSize(client, 64<<10)
	var head [5]byte
	// The startup phase: untyped messages, length first. An SSL or GSS
	// request is answered with one byte and followed by another.
	for {
		if _, err := io.ReadFull(r, head[:4]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[:4]))
		if n < 8 || n > 1<<20 {
			return errors.New("wire counter: bad startup message")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		code := binary.BigEndian.Uint32(body[:4])
		negotiate := code == sslRequest || code == gssEncRequest
		if negotiate {
			p.mu.Lock()
			p.sslAnswers++
			p.mu.Unlock()
		}
		if _, err := server.Write(append(head[:4:4], body...)); err != nil {
			return err
		}
		if !negotiate {
			break
		}
	}
	named := map[string]string{} // prepared statement name → SQL
	current := ""                // the SQL of the statement in progress
	for {
		if _, err := io.ReadFull(r, head[:5]); err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(head[1:5]))
		if n < 4 {
			return errors.New("wire counter: bad message length")
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		switch head[0] {
		case 'Q': // simple query: one round trip
			current = normalizeSQL(cstring(body))
			c.count(current, 1, 1)
			p.ran()
		case 'P': // Parse: name, SQL, parameter types
			name := cstring(body)
			current = normalizeSQL(cstring(body[min(len(name)+1, len(body)):]))
			named[name] = current
		case 'B': // Bind: portal, statement, then parameters (not read)
			portal := cstring(body)
			current = named[cstring(body[min(len(portal)+1, len(body)):])]
		case 'E': // Execute
			c.count(current, 1, 0)
			p.ran()
		case 'S': // Sync: the client waits for ReadyForQuery
			c.count(current, 0, 1)
		}
		if _, err := server.Write(append(head[:5:5], body...)); err != nil {
			return err
		}
	}
}

func (c *WireCounter) count(sql string, executions, trips int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.bySQL[sql]
	if s == nil {
		s = &StatementStats{SQL: sql}
		c.bySQL[sql] = s
	}
	s.Executions += executions
	s.RoundTrips += trips
	c.trips += trips
}

// cstring returns b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}

// normalizeSQL makes every run of white space one space and cuts the text
// to 100 characters, so that one statement is counted under one key.
func normalizeSQL(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

func (p *pgConn) ran() {
	p.mu.Lock()
	p.executed = true
	p.mu.Unlock()
}
