package node

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stokehq/stoke/cluster/clustertest"
)

// lockedBuffer is a bytes.Buffer safe for the agent's writes and the
// test's reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSecurityAdminSecretNeverOnTheConsole: the console may be a log
// (stderr under systemd or docker), so the bootstrap admin secret is
// printed only to SecretConsole (a terminal); the console is told where
// the credentials file is.
func TestSecurityAdminSecretNeverOnTheConsole(t *testing.T) {
	for _, toTerminal := range []bool{false, true} {
		t.Run(fmt.Sprintf("terminal=%t", toTerminal), func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
			if os.Geteuid() != 0 {
				cfg.Worker.InsecureNoSandbox = true
			}
			console, terminal := &lockedBuffer{}, &lockedBuffer{}
			cfg.Console = console
			if toTerminal {
				cfg.SecretConsole = terminal
			}
			a := startAgent(t, cfg)
			path := a.cfg.credentialsFile()
			announced := console
			if toTerminal {
				announced = terminal
			}
			clustertest.WaitFor(t, time.Minute, func() error {
				if !strings.Contains(announced.String(), "created the admin access key") {
					return fmt.Errorf("nothing announced the admin key yet; console: %q", console.String())
				}
				return nil
			})
			creds, err := ReadCredentials(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(console.String(), creds.SecretAccessKey) {
				t.Fatalf("the console (a log, maybe) shows the admin secret:\n%s", console.String())
			}
			if !strings.Contains(announced.String(), path) {
				t.Fatalf("the announcement does not say where the credentials are:\n%s", announced.String())
			}
			if got := strings.Contains(terminal.String(), creds.SecretAccessKey); got != toTerminal {
				t.Fatalf("secret on the terminal: %t, want %t", got, toTerminal)
			}
		})
	}
}
