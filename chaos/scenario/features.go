package scenario

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/stokehq/stoke/chaos/client"
	"github.com/stokehq/stoke/chaos/harness"
)

// Probes for features scenarios depend on: a scenario whose feature is
// missing skips with the issue that brings it, and runs as soon as a
// merge of main brings the feature.

// requireLambdaAPI skips unless the agent serves the Lambda REST API
// (issue 4).
func requireLambdaAPI(t *testing.T, c *harness.Cluster) {
	t.Helper()
	n := c.Nodes()[0]
	api, closeIdle := client.NewLambda(n.Endpoint(), c.Credentials())
	defer closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := api.ListFunctions(ctx, &lambda.ListFunctionsInput{})
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		t.Skipf("the agent does not serve the Lambda API on %s yet (issue 4): %v", n.Endpoint(), err)
	}
	if err != nil {
		t.Fatalf("ListFunctions on %s: %v", n, err)
	}
}
