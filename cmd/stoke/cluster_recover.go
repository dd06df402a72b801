package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/stokehq/stoke/cluster"
)

// clusterRecover is `stoke cluster recover`: offline, on a stopped server
// whose cluster lost its quorum for good, it rewrites the Raft
// configuration in the data dir to the servers listed. Unlike the other
// cluster subcommands it talks to no agent; it refuses to run while one
// holds the data dir.
func clusterRecover(args []string) error {
	fs := flag.NewFlagSet("cluster recover", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data dir of the stopped server to recover (required)")
	var servers serverList
	fs.Var(&servers, "server", "ID=RAFT_ADDR of a server of the new configuration, this one included (repeatable; all become voters)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: stoke cluster recover --data-dir DIR --server ID=RAFT_ADDR [--server ID=RAFT_ADDR ...]\n\n"+
			"Run on a surviving server, with its agent stopped, after a quorum of servers is lost for good.\n"+
			"Every server listed must run the same command; then start them again.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q (servers are given with --server ID=RAFT_ADDR)", fs.Arg(0))
	}
	if *dataDir == "" {
		return errors.New("--data-dir is required: the data dir of the stopped server to recover")
	}
	id, err := storedNodeID(*dataDir)
	if err != nil {
		return err
	}
	rc := cluster.DefaultRecoverConfig()
	rc.NodeID, rc.DataDir, rc.Servers = id, *dataDir, servers
	// Raft's own log lines would only repeat what the result says.
	rc.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	res, err := cluster.Recover(rc)
	if err != nil {
		return err
	}
	fmt.Printf("recovered %s: it kept the log up to index %d (term %d)\n", id, res.LastIndex, res.LastTerm)
	fmt.Println("the Raft configuration was:")
	printServers(res.Previous)
	fmt.Println("it is now:")
	printServers(servers)
	fmt.Println("start the agent again; it elects itself (with the other servers listed, once they run) and new servers can join")
	return nil
}

func printServers(servers []cluster.Server) {
	for _, s := range servers {
		suffrage := "voter"
		if !s.Voter {
			suffrage = "nonvoter"
		}
		fmt.Printf("  %s  %s  %s\n", s.ID, s.Address, suffrage)
	}
}

// storedNodeID reads the node id the agent keeps in its data dir
// (node.Agent writes DATA_DIR/node-id on first start).
func storedNodeID(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "node-id"))
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s has no node-id file: not the data dir of a Stoke agent", dataDir)
	}
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("%s: empty node-id file", dataDir)
	}
	return id, nil
}

// serverList is the repeatable --server ID=RAFT_ADDR flag.
type serverList []cluster.Server

func (l *serverList) String() string {
	var parts []string
	for _, s := range *l {
		parts = append(parts, s.ID+"="+s.Address)
	}
	return strings.Join(parts, ",")
}

func (l *serverList) Set(v string) error {
	id, addr, ok := strings.Cut(v, "=")
	if !ok || id == "" || addr == "" {
		return fmt.Errorf("%q is not ID=RAFT_ADDR", v)
	}
	*l = append(*l, cluster.Server{ID: id, Address: addr, Voter: true})
	return nil
}
