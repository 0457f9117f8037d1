package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The bench's service runs in its own process, beside the load client; a
// throwaway PostgreSQL server runs in processes of its own. On a machine
// whose cores they share, the rate is the inverse of the CPU a message
// costs all of them, so the bench reports that cost, read from /proc
// (Linux; elsewhere the figures are missing).

// userHZ is the unit of the CPU times in /proc/<pid>/stat on Linux.
const userHZ = 100

// CPUUse is CPU time used so far.
type CPUUse struct {
	// Self is this process's: the service and the load client.
	Self time.Duration
	// Server is the PostgreSQL server's, its exited backends included;
	// valid only when ServerOK.
	Server   time.Duration
	ServerOK bool
}

// Sub returns the CPU used between then and u.
func (u CPUUse) Sub(then CPUUse) CPUUse {
	return CPUUse{Self: u.Self - then.Self, Server: u.Server - then.Server, ServerOK: u.ServerOK && then.ServerOK}
}

// procStat reads a process's parent and CPU times (user and system, its
// own and its reaped children's) from /proc/<pid>/stat.
func procStat(pid string) (ppid int, own, children time.Duration, err error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start
	// after its closing parenthesis.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, fmt.Errorf("/proc/%s/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %d fields", pid, len(f))
	}
	var n [5]int64
	for j, k := range []int{1, 11, 12, 13, 14} { // ppid, utime, stime, cutime, cstime
		if n[j], err = strconv.ParseInt(f[k], 10, 64); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%s/stat: %v", pid, err)
		}
	}
	tick := time.Second / userHZ
	return int(n[0]), time.Duration(n[1]+n[2]) * tick, time.Duration(n[3]+n[4]) * tick, nil
}

// ReadCPU returns the CPU used so far by this process and, when serverPID
// is not 0, by the PostgreSQL server whose postmaster it is: the
// postmaster, its children alive now, and those it has reaped.
func ReadCPU(serverPID int) (CPUUse, bool) {
	_, self, _, err := procStat("self")
	if err != nil {
		return CPUUse{}, false
	}
	u := CPUUse{Self: self}
	if serverPID == 0 {
		return u, true
	}
	_, own, reaped, err := procStat(strconv.Itoa(serverPID))
	if err != nil {
		return u, true
	}
	u.Server, u.ServerOK = own+reaped, true
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return CPUUse{Self: self}, true
	}
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		ppid, cpu, _, err := procStat(e.Name())
		if err == nil && ppid == serverPID {
			u.Server += cpu
		}
	}
	return u, true
}
