//go:build unix

package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
)

// runAs is the unprivileged user that initdb, pg_ctl and the server run as
// when the tests run as root, which PostgreSQL refuses. A nil *runAs means
// running as ourselves.
type runAs struct {
	name     string
	uid, gid uint32
}

// runAsCandidates are tried in order: the postgres user that the Debian
// package creates, then nobody, which every system has.
var runAsCandidates = []string{"postgres", "nobody"}

// unprivileged returns the user to run the server as, or nil when we are
// not root.
func unprivileged() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range runAsCandidates {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("user %s: %w", name, err)
		}
		return &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("the tests run as root, which PostgreSQL refuses, and none of the users %v exists to run it as instead", runAsCandidates)
}

// apply makes cmd run as a, dropping root's supplementary groups.
func (a *runAs) apply(cmd *exec.Cmd) {
	if a == nil {
		return
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: a.uid, Gid: a.gid}}
}

// own gives path to a.
func (a *runAs) own(path string) error {
	if a == nil {
		return nil
	}
	return os.Chown(path, int(a.uid), int(a.gid))
}

// suffix describes a for error messages, or returns "" for nil.
func (a *runAs) suffix() string {
	if a == nil {
		return ""
	}
	return " (run as user " + a.name + ")"
}

// String returns the user's name.
func (a *runAs) String() string {
	if a == nil {
		return "the current user"
	}
	return a.name
}
