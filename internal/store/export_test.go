package store

// PreparedCount reports how many statements the store keeps prepared.
func PreparedCount(s *Store) int {
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	return len(s.stmts.m)
}
