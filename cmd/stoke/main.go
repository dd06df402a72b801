// Command stoke is both the Stoke agent and its command-line client.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "stoke: not yet implemented")
	os.Exit(2)
}
