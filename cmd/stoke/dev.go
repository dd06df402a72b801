package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stokehq/stoke/node/seal"
)

// runDev starts a local cluster of N server agents on 127.0.0.1 in the
// background (`stoke dev --nodes 3`), or stops it (`stoke dev stop`).
// Node i (1-based) listens on HTTP 9200+i, gRPC 9300+i, Raft 9400+i and
// gossip 9500+i, keeps its data in DIR/nodeI and logs to DIR/nodeI/agent.log.
func runDev(args []string) error {
	if len(args) > 0 && args[0] == "stop" {
		return devStop(args[1:])
	}
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	nodes := fs.Int("nodes", 3, "number of server agents")
	dir := fs.String("dir", ".stoke-cluster", "directory for every node's data and logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return errors.New("--nodes must be between 1 and 9")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	keyFile := filepath.Join(*dir, "cluster.key")
	if _, _, err := seal.LoadOrCreate(keyFile); err != nil {
		return err
	}
	expect := min(*nodes, 3)
	for i := 1; i <= *nodes; i++ {
		ndir := filepath.Join(*dir, fmt.Sprintf("node%d", i))
		if pid, ok := runningPID(ndir); ok {
			return fmt.Errorf("node%d is already running (pid %d); stop it with: stoke dev stop --dir %s", i, pid, *dir)
		}
		if err := os.MkdirAll(ndir, 0o700); err != nil {
			return err
		}
		agentArgs := []string{"agent", "--node-id", fmt.Sprintf("node%d", i), "--data-dir", ndir,
			"--cluster-key-file", keyFile, "--server", "--bootstrap-expect", strconv.Itoa(expect),
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", 9200+i), "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", 9300+i),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", 9400+i), "--gossip-addr", fmt.Sprintf("127.0.0.1:%d", 9500+i),
			"--reap-timeout", "5m"}
		if i > 1 {
			agentArgs = append(agentArgs, "--join", fmt.Sprintf("127.0.0.1:%d", 9501))
		}
		logf, err := os.OpenFile(filepath.Join(ndir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		cmd := exec.Command(self, agentArgs...)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // survives the shell that ran make
		if err := cmd.Start(); err != nil {
			logf.Close()
			return err
		}
		logf.Close()
		if err := os.WriteFile(filepath.Join(ndir, "pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
			return err
		}
		_ = cmd.Process.Release()
	}
	// The first leader writes the admin credentials into its data dir.
	creds := ""
	for deadline := time.Now().Add(60 * time.Second); creds == "" && time.Now().Before(deadline); {
		for i := 1; i <= *nodes; i++ {
			p := filepath.Join(*dir, fmt.Sprintf("node%d", i), "credentials")
			if _, err := os.Stat(p); err == nil {
				creds = p
			}
		}
		if creds == "" {
			time.Sleep(200 * time.Millisecond) // polling a file another process writes
		}
	}
	fmt.Printf("Stoke dev cluster: %d server nodes on 127.0.0.1, data and logs in %s/nodeN\n", *nodes, *dir)
	for i := 1; i <= *nodes; i++ {
		fmt.Printf("  node%d  http://127.0.0.1:%d  (gRPC %d, Raft %d, gossip %d)\n", i, 9200+i, 9300+i, 9400+i, 9500+i)
	}
	if creds == "" {
		fmt.Printf("\nNo leader wrote credentials yet; see %s/node*/agent.log\n", *dir)
	} else {
		fmt.Printf("\nAdmin credentials: %s\n  export STOKE_CREDENTIALS=%s STOKE_ENDPOINT=http://127.0.0.1:9201\n  stoke cluster members\n", creds, creds)
	}
	fmt.Printf("Stop it with: make cluster-stop (or stoke dev stop --dir %s)\n", *dir)
	return nil
}

func runningPID(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}

func devStop(args []string) error {
	fs := flag.NewFlagSet("dev stop", flag.ContinueOnError)
	dir := fs.String("dir", ".stoke-cluster", "the dev cluster's directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	nodes, _ := filepath.Glob(filepath.Join(*dir, "node*"))
	stopped := 0
	for _, ndir := range nodes {
		pid, ok := runningPID(ndir)
		if !ok {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			stopped++
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if syscall.Kill(pid, 0) != nil {
					break
				}
			}
		}
		_ = os.Remove(filepath.Join(ndir, "pid"))
	}
	fmt.Printf("stopped %d node(s); data kept in %s (remove it for a fresh cluster)\n", stopped, *dir)
	return nil
}
