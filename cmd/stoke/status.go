package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stokehq/stoke/node"
)

// runStatus prints the state of the node the client talks to, with a loud
// warning when it runs functions without sandboxes.
func runStatus(args []string) error {
	var client clientFlags
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	client.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var st node.NodeStatus
	if err := client.call(ctx, "GET", "/stoke/v1/status", nil, &st); err != nil {
		return err
	}
	return printJSONOr(*asJSON, st, func(w io.Writer) {
		if st.Warning != "" {
			fmt.Fprintf(w, "!!! %s !!!\n", st.Warning)
		}
		for _, kv := range [][2]string{
			{"Node", st.Node}, {"Role", st.Role}, {"Build", st.Version}, {"Raft", st.RaftState}, {"Leader", st.Leader},
			{"Applied index", fmt.Sprint(st.Applied)}, {"Draining", fmt.Sprint(st.Draining)}, {"Isolation", st.Isolation},
			{"Sandboxes", fmt.Sprintf("%d idle, %d busy, %d initializing, %d queued", st.SandboxesIdle, st.SandboxesBusy, st.SandboxesInit, st.Queued)},
			{"Sandbox memory", fmt.Sprintf("%d of %d MB", st.MemoryUsedMB, st.MemoryBudgetMB)},
			{"Runtimes", strings.Join(st.Runtimes, ", ")},
		} {
			fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
		}
	})
}
