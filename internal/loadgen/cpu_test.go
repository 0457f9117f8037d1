//go:build linux

package loadgen

import (
	"os"
	"os/exec"
	"testing"
)

// ReadCPU counts this process's CPU, and a server's children's, those
// it has reaped included. (CPU times come from /proc: Linux only.)
func TestReadCPU(t *testing.T) {
	before, ok := ReadCPU(os.Getpid())
	if !ok || !before.ServerOK {
		t.Fatalf("ReadCPU(%d) = %+v, %v; want both counts", os.Getpid(), before, ok)
	}
	// A child of this process, as a backend is of the postmaster, spins
	// and exits; once reaped, its CPU counts for its parent.
	if out, err := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done").CombinedOutput(); err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	after, _ := ReadCPU(os.Getpid())
	used := after.Sub(before)
	if used.Server-used.Self < 50_000_000 { // 50 ms
		t.Errorf("the parent with its child used %v and itself %v: the child's CPU is missing", used.Server, used.Self)
	}
	if self, ok := ReadCPU(0); !ok || self.ServerOK || self.Self < before.Self {
		t.Errorf("ReadCPU(0) = %+v, %v; want this process's count alone, no less than before", self, ok)
	}
}
