package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stokehq/stoke/node"
)

// runCluster dispatches `stoke cluster <subcommand>`. Every subcommand
// but recover talks to the local agent's admin endpoints under
// /stoke/v1/cluster; recover works offline on a stopped server's data dir.
func runCluster(args []string) error {
	subs := map[string]func([]string) error{
		"join":        clusterJoin,
		"leave":       clusterLeave,
		"members":     clusterMembers,
		"raft":        clusterRaft,
		"force-leave": clusterForceLeave,
		"recover":     clusterRecover,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		return fmt.Errorf("usage: stoke cluster join ADDR... | leave | members [--json] | raft [--json] | force-leave NODE | recover --data-dir DIR --server ID=RAFT_ADDR [--server ...]")
	}
	return subs[args[0]](args[1:])
}

func clusterFlagSet(name string) (*flag.FlagSet, *clientFlags) {
	fs := flag.NewFlagSet("cluster "+name, flag.ContinueOnError)
	c := &clientFlags{}
	c.register(fs)
	return fs, c
}

func clusterJoin(args []string) error {
	fs, c := clusterFlagSet("join")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: stoke cluster join GOSSIP_ADDR [GOSSIP_ADDR ...]")
	}
	var out struct{ Joined int }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.call(ctx, "POST", "/stoke/v1/cluster/join", map[string]any{"addrs": fs.Args()}, &out); err != nil {
		return err
	}
	fmt.Printf("joined: %d node(s) answered\n", out.Joined)
	return nil
}

func clusterLeave(args []string) error {
	fs, c := clusterFlagSet("leave")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the agent to drain and leave")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var out struct{ Node string }
	if err := c.call(ctx, "POST", "/stoke/v1/cluster/leave", struct{}{}, &out); err != nil {
		return err
	}
	fmt.Printf("%s left the cluster; the agent is stopping\n", out.Node)
	return nil
}

func clusterMembers(args []string) error {
	fs, c := clusterFlagSet("members")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out struct{ Members []node.MemberInfo }
	if err := c.call(ctx, "GET", "/stoke/v1/cluster/members", nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out.Members)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tADDRESS\tROLE\tSTATUS\tRAFT\tSANDBOXES\tLOAD")
	for _, m := range out.Members {
		raft := m.Raft
		if m.Leader {
			raft += " (leader)"
		}
		load := fmt.Sprintf("%d in flight, %d/%d MB", m.Inflight, m.MemoryUsedMB, m.MemoryMB)
		if m.Draining {
			load += ", draining"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d idle / %d busy\t%s\n", m.Node, m.Address, m.Role, m.Status, raft,
			m.SandboxIdle, m.SandboxBusy, load)
	}
	return w.Flush()
}

func clusterRaft(args []string) error {
	fs, c := clusterFlagSet("raft")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var st node.RaftStatus
	if err := c.call(ctx, "GET", "/stoke/v1/cluster/raft", nil, &st); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(st)
	}
	fmt.Printf("leader: %s\n\n", orDash(st.Leader))
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tADDRESS\tSUFFRAGE\tSTATE\tTERM\tLAST INDEX\tCOMMIT\tAPPLIED\tCONTACT")
	for _, p := range st.Peers {
		if p.Error != "" {
			fmt.Fprintf(w, "%s\t%s\t%s\tunreachable: %s\t\t\t\t\t\n", p.Node, p.Address, p.Suffrage, p.Error)
			continue
		}
		contact := "never"
		switch {
		case p.LastContactMs == 0:
			contact = "-"
		case p.LastContactMs > 0:
			contact = (time.Duration(p.LastContactMs) * time.Millisecond).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.Node, p.Address, p.Suffrage, p.State, p.Term,
			p.LastLogIndex, p.CommitIndex, p.AppliedIndex, contact)
	}
	return w.Flush()
}

func clusterForceLeave(args []string) error {
	fs, c := clusterFlagSet("force-leave")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: stoke cluster force-leave NODE")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	if err := c.call(ctx, "POST", "/stoke/v1/cluster/force-leave", map[string]string{"node": fs.Arg(0)}, nil); err != nil {
		return err
	}
	fmt.Printf("removed %s from raft and the node records\n", fs.Arg(0))
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
