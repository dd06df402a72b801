// Command stoke is both the Stoke agent and its command-line client.
//
//	stoke agent [flags]        run a node (HTTP API, Raft, worker)
//	stoke cluster ...          join, leave, members, raft, force-leave, recover
//	stoke dlq ...              list, show, redrive, purge a function's dead-letter queue
//	stoke tls ...              create the cluster CA and node certificates
//	stoke dev --nodes 3        start a local multi-node cluster (stoke dev stop)
//	stoke status               the state of the node the client talks to
//	stoke credentials          print the admin credentials as an AWS CLI profile
//	stoke keygen               print a new cluster key
//	stoke local-invoke         run a function from a folder, no cluster
//	stoke version              print the build version
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/stokehq/stoke/runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one `stoke` subcommand.
type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"agent":        {"run a Stoke node", runAgent},
	"cluster":      {"join, leave, members, raft, force-leave, recover", runCluster},
	"dlq":          {"list, show, redrive or purge a function's dead-letter queue", runDLQ},
	"tls":          {"create the cluster CA and node certificates", runTLS},
	"dev":          {"start (or stop) a local multi-node cluster", runDev},
	"status":       {"print the node's state (warns loudly when functions run unsandboxed)", runStatus},
	"credentials":  {"print the admin credentials as an AWS CLI profile", runCredentials},
	"account":      {"create and list tenant accounts (admin)", runAccount},
	"key":          {"create, list and revoke access keys (admin)", runKey},
	"logs":         {"print a function's logs from every node", runLogs},
	"fn":           {"manage and invoke functions (create, update-code, invoke, list, alias, ...)", runFn},
	"keygen":       {"print a new cluster key", runKeygen},
	"local-invoke": {"run a function from a folder on this machine, without a cluster", runLocal},
	"version":      {"print the build version", func([]string) error { fmt.Println(version); return nil }},
}

func main() {
	// A sandbox's init process is this binary re-executed; it must take
	// over before anything else runs.
	runtime.MaybeRunSandboxInit()

	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "stoke: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "stoke %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: stoke <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", name, commands[name].summary)
	}
}
