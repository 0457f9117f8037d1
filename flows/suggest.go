package flows

import (
	"strings"

	"github.com/agnivade/levenshtein"
)

// suggest returns the candidate closest to s when it is close enough to be a
// likely misspelling ("sensitve" → "sensitive"), else "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 1<<30
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := levenshtein.ComputeDistance(ls, strings.ToLower(c))
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if len(s) > 8 {
		limit = 3
	}
	if len(s) <= 3 {
		limit = 1
	}
	if bestDist <= limit && bestDist < len(s) {
		return best
	}
	return ""
}
