package store

// PreparedCount reports how many statements the store keeps prepared.
func PreparedCount(s *Store) int {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return len(s.stmts.m)
}

// ClaimQueries returns the PostgreSQL statements of ClaimOutbox and
// ClaimOutboxRows, to check their plans.
func ClaimQueries(s *Store) (search, rows string) {
	return s.claimSearch, s.claimRows
}
