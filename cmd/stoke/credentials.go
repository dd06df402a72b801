package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/stokehq/stoke/node"
	"github.com/stokehq/stoke/node/seal"
)

// runCredentials prints the bootstrap admin credentials as an AWS CLI
// profile, plus the environment a shell or SDK needs.
func runCredentials(args []string) error {
	fs := flag.NewFlagSet("credentials", flag.ContinueOnError)
	dataDir := fs.String("data-dir", node.DefaultConfig().DataDir, "the agent's data directory")
	file := fs.String("file", "", "credentials file (default: DATA_DIR/credentials)")
	profile := fs.String("profile", "stoke", "profile name to print")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := *file
	if path == "" {
		path = filepath.Join(*dataDir, "credentials")
	}
	c, err := node.ReadCredentials(path)
	if err != nil {
		return fmt.Errorf("%w (has the agent started once with this data dir?)", err)
	}
	fmt.Printf("%s\n# Use it with the AWS CLI or an SDK:\n#   aws --profile %s --endpoint-url %s lambda list-functions\n"+
		"# or export:\n#   AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_REGION=%s AWS_DEFAULT_REGION=%s AWS_ENDPOINT_URL=%s\n",
		c.Profile(*profile), *profile, c.Endpoint, c.AccessKeyID, c.SecretAccessKey, c.Region, c.Region, c.Endpoint)
	return nil
}

func runKeygen([]string) error {
	s, err := seal.NewSecret()
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}
