//go:build !unix

package pgtest

import "os/exec"

// runAs is never needed where there is no root user to refuse.
type runAs struct{}

func unprivileged() (*runAs, error) { return nil, nil }
func (a *runAs) apply(*exec.Cmd)    {}
func (a *runAs) own(string) error   { return nil }
func (a *runAs) suffix() string     { return "" }
func (a *runAs) String() string     { return "the current user" }
