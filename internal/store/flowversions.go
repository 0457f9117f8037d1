package store

import (
	"context"
	"fmt"
)

// SaveFlowVersion keeps a flow version's source by content hash; saving a
// version twice is a no-op. It implements flows.VersionStore.
func (s *Store) SaveFlowVersion(ctx context.Context, id, hash, file string, src []byte) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO flow_versions (hash, flow_id, file, source, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO NOTHING`), hash, id, file, src, micros(s.now()))
	if err != nil {
		return fmt.Errorf("save flow version: %w", err)
	}
	return nil
}

// LoadFlowVersion returns a stored flow version's file name and source.
func (s *Store) LoadFlowVersion(ctx context.Context, hash string) (string, []byte, error) {
	var row struct {
		File   string `db:"file"`
		Source []byte `db:"source"`
	}
	if err := s.db.GetContext(ctx, &row, s.q(`SELECT file, source FROM flow_versions WHERE hash = ?`), hash); err != nil {
		return "", nil, fmt.Errorf("load flow version %s: %w", hash, err)
	}
	return row.File, row.Source, nil
}
