package audit

import (
	"bytes"
	"fmt"
)

// Kinds of Problem.
const (
	KindEdited    = "edited"
	KindInserted  = "inserted"
	KindDeleted   = "deleted"
	KindReordered = "reordered"
)

// A Problem describes the first thing wrong in an audit log.
type Problem struct {
	// Seq is the sequence number of the record concerned, as stored; for a
	// deletion it is the first missing number.
	Seq int64
	// Kind is KindEdited, KindInserted, KindDeleted or KindReordered.
	Kind string
	// Detail says, in a plain sentence without a capital or full stop, how
	// the problem shows.
	Detail string
	// Index is the position, in the slice given to Verify, of the record
	// named by Seq; for a deletion, of the first record after the gap, or the
	// length of the slice when the end of the log is missing. Two records can
	// carry the same Seq, and Index tells them apart.
	Index int
}

// Error returns the problem as a sentence, such as "audit record 17 was
// edited: its hash does not match its contents".
func (p *Problem) Error() string {
	verb := "is wrong"
	switch p.Kind {
	case KindEdited, KindInserted, KindDeleted:
		verb = "was " + p.Kind
	case KindReordered:
		verb = "is out of order"
	}
	return fmt.Sprintf("audit record %d %s: %s", p.Seq, verb, p.Detail)
}

// Verify checks that records, given in storage order, form one unbroken
// chain from record 1, and returns nil if they do, or the first problem
// found, in storage order.
//
// It finds a record whose contents were changed (KindEdited), a record
// that is not part of the chain, including a copy or a second record with the
// same sequence number (KindInserted), a gap in the chain (KindDeleted), and
// records stored in an order other than their sequence (KindReordered).
//
// A hash chain alone cannot show that records were cut off the end of the log,
// nor that valid records were appended or that the whole log was rewritten
// from some point on: compare the last record with a sequence number and hash
// kept elsewhere for that, and use VerifyUpTo for the sequence number.
func Verify(records []Record) *Problem {
	return verify(records, 0)
}

// VerifyUpTo is Verify for a log known to reach at least lastSeq: it also
// reports the records missing from the end when the chain stops short of
// lastSeq. Records after lastSeq are accepted, since the log may have grown
// since lastSeq was noted.
func VerifyUpTo(records []Record, lastSeq int64) *Problem {
	return verify(records, lastSeq)
}

func verify(records []Record, lastSeq int64) *Problem {
	// A record that does not match its own hash is the plainest evidence, and
	// it would make every later finding about the chain noise, so it comes first.
	for i := range records {
		if p := edited(&records[i], i); p != nil {
			return p
		}
	}
	links := make([]Link, len(records))
	for i := range records {
		links[i] = records[i].Link()
	}
	return follow(links, lastSeq)
}

// edited reports r, at index i, when it does not match its own hash.
func edited(r *Record, i int) *Problem {
	if !bytes.Equal(r.Hash, r.ComputeHash()) {
		return &Problem{Seq: r.Seq, Kind: KindEdited, Detail: "its hash does not match its contents", Index: i}
	}
	return nil
}

// A Link is what following the chain needs of a record: its number and the
// hashes that tie it to its neighbours. A log's links take a fraction of the
// memory its records do.
type Link struct {
	Seq      int64
	PrevHash []byte
	Hash     []byte
}

// Link returns the record's link.
func (r *Record) Link() Link { return Link{Seq: r.Seq, PrevHash: r.PrevHash, Hash: r.Hash} }

// FollowUpTo is VerifyUpTo for the links of records whose hashes are known
// to match their contents (Scan checked them): it finds what is wrong with
// the chain itself, with the same Problems.
func FollowUpTo(links []Link, lastSeq int64) *Problem {
	return follow(links, lastSeq)
}

func follow(records []Link, lastSeq int64) *Problem {
	// Follow the chain from the start through the hashes rather than through
	// storage order, so that a reordering does not look like a gap and an
	// insertion does not hide the records after it.
	byPrev := make(map[string][]int, len(records))
	for i := range records {
		k := string(records[i].PrevHash)
		byPrev[k] = append(byPrev[k], i)
	}
	var chain []int // chain[k] is the index of the record with Seq k+1
	onChain := make([]bool, len(records))
	prev := string(make([]byte, HashSize))
	for seq := int64(1); ; seq++ {
		i := successor(records, byPrev, prev, seq)
		if i < 0 {
			break
		}
		chain = append(chain, i)
		onChain[i] = true
		prev = string(records[i].Hash)
	}
	last := int64(len(chain)) // Seq of the last chained record
	lastIdx := -1
	if len(chain) > 0 {
		lastIdx = chain[len(chain)-1]
	}

	var found *Problem
	report := func(p *Problem) {
		if found == nil || p.Index < found.Index {
			found = p
		}
	}

	for k := 1; k < len(chain); k++ {
		if chain[k] < chain[k-1] {
			report(&Problem{
				Seq:    int64(k + 1),
				Kind:   KindReordered,
				Detail: fmt.Sprintf("it is stored before record %d", k),
				Index:  chain[k],
			})
		}
	}

	// Records off the chain are either forged, or the rest of the log after a
	// gap or after a record whose hash was recomputed: the rest is what comes
	// after the last chained record in storage and carries higher numbers.
	restSeq, restIdx := int64(0), -1
	for i := range records {
		if onChain[i] {
			continue
		}
		r := &records[i]
		switch {
		case r.Seq >= 1 && r.Seq <= last:
			report(&Problem{Seq: r.Seq, Kind: KindInserted, Detail: duplicateDetail(r, &records[chain[r.Seq-1]]), Index: i})
		case r.Seq < 1:
			report(&Problem{Seq: r.Seq, Kind: KindInserted, Detail: "sequence numbers start at 1", Index: i})
		case i < lastIdx:
			report(&Problem{Seq: r.Seq, Kind: KindInserted, Detail: fmt.Sprintf("it is not part of the chain, which goes on past it to record %d", last), Index: i})
		default:
			if restIdx < 0 || r.Seq < restSeq {
				restSeq = r.Seq
			}
			if restIdx < 0 {
				restIdx = i
			}
		}
	}
	switch {
	case restIdx < 0:
	case restSeq == last+1 && last == 0:
		report(&Problem{Seq: restSeq, Kind: KindInserted, Detail: "it claims to be the first record but points to an earlier one", Index: restIdx})
	case restSeq == last+1:
		// Record last matches its own hash, yet its successor holds another
		// hash for it: it was rewritten and its hash computed again.
		report(&Problem{
			Seq:    last,
			Kind:   KindEdited,
			Detail: fmt.Sprintf("record %d does not point to it, so it was changed and its hash computed again", restSeq),
			Index:  lastIdx,
		})
	default:
		report(&Problem{Seq: last + 1, Kind: KindDeleted, Detail: gapDetail(last+1, restSeq-1, restSeq), Index: restIdx})
	}

	if found == nil {
		found = shortOf(last, lastSeq, len(records))
	}
	return found
}

// shortOf reports the records missing from the end of a log whose chain
// stops at record last when it should reach lastSeq; index is the log's
// length.
func shortOf(last, lastSeq int64, index int) *Problem {
	if lastSeq <= last {
		return nil
	}
	detail := fmt.Sprintf("the log should reach record %d but ends at record %d", lastSeq, last)
	if last == 0 {
		detail = fmt.Sprintf("the log should reach record %d but is empty", lastSeq)
	}
	return &Problem{Seq: last + 1, Kind: KindDeleted, Detail: detail, Index: index}
}

// A Scan checks a log one record at a time, in storage order, in constant
// memory, for logs too long to hold in memory. Add checks each record's
// hash, and the first that does not match is the problem Verify would report
// first. While every record added is the next of the chain (records 1, 2, 3
// ..., each pointing to the one before), the log is Whole, and UpTo finishes
// the check. Otherwise the chain needs following: collect the links in a
// second pass and give them to FollowUpTo.
type Scan struct {
	n      int
	last   Link
	broken bool
}

// Add checks r, the next record in storage order, and returns the problem
// when r does not match its own hash.
func (s *Scan) Add(r *Record) *Problem {
	if p := edited(r, s.n); p != nil {
		return p
	}
	prev := s.last.Hash
	if s.n == 0 {
		prev = zeroHash[:]
	}
	if r.Seq != int64(s.n)+1 || !bytes.Equal(r.PrevHash, prev) {
		s.broken = true
	}
	s.n++
	s.last = Link{Seq: r.Seq, PrevHash: bytes.Clone(r.PrevHash), Hash: bytes.Clone(r.Hash)}
	return nil
}

// Len returns how many records were added.
func (s *Scan) Len() int { return s.n }

// Whole reports whether the records added are records 1 to Len in order,
// each pointing to the one before.
func (s *Scan) Whole() bool { return !s.broken }

// UpTo returns, for a Whole log, what VerifyUpTo would: nil, or the records
// missing from the end when it stops short of lastSeq.
func (s *Scan) UpTo(lastSeq int64) *Problem {
	if s.broken {
		panic("audit: Scan.UpTo on a log that is not whole; use FollowUpTo")
	}
	return shortOf(int64(s.n), lastSeq, s.n)
}

var zeroHash [HashSize]byte

// successor returns the index of the record with number seq that points to
// the record whose hash is prev, or -1. When several do (a forged record
// copying a genuine one's place), it prefers one that a later record points
// to, then the one stored first.
func successor(records []Link, byPrev map[string][]int, prev string, seq int64) int {
	first, linked := -1, -1
	for _, i := range byPrev[prev] {
		if records[i].Seq != seq {
			continue
		}
		if first < 0 {
			first = i
		}
		if linked < 0 {
			for _, j := range byPrev[string(records[i].Hash)] {
				if records[j].Seq == seq+1 {
					linked = i
					break
				}
			}
		}
	}
	if linked >= 0 {
		return linked
	}
	return first
}

func duplicateDetail(r, chained *Link) string {
	switch {
	case bytes.Equal(r.Hash, chained.Hash):
		return fmt.Sprintf("it is a second copy of record %d", r.Seq)
	case bytes.Equal(r.PrevHash, chained.PrevHash):
		return fmt.Sprintf("another record %d holds the same place and the chain goes on from that one", r.Seq)
	default:
		return fmt.Sprintf("another record %d is in the chain and this one does not point to the record before it", r.Seq)
	}
}

func gapDetail(from, to, next int64) string {
	if from == to {
		return fmt.Sprintf("record %d points to a record that is missing", next)
	}
	return fmt.Sprintf("records %d to %d are missing before record %d", from, to, next)
}
