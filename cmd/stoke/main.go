// Command stoke is both the Stoke agent and its command-line client.
package main

import (
	"fmt"
	"os"

	"github.com/stokehq/stoke/runtime"
)

func main() {
	// A sandbox init is this binary re-executed by the runtime pool: it must
	// take over before anything else runs.
	runtime.MaybeRunSandboxInit()
	fmt.Fprintln(os.Stderr, "stoke: not yet implemented")
	os.Exit(2)
}
