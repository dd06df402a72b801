package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// secretConsole returns f when it is a terminal, where a person reads what
// the agent prints once, and nil otherwise: under systemd, docker or a
// redirect the output lands in logs, which must never hold a secret.
func secretConsole(f *os.File) io.Writer {
	if !isTerminal(f) {
		return nil
	}
	return f
}

// isTerminal reports whether f is a terminal (it answers the TCGETS ioctl,
// as golang.org/x/term checks).
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
