package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

const testRole = "arn:aws:iam::123456789012:role/lambda-role"

type fnOutput struct {
	Runtime         string         `json:"runtime"`
	Event           map[string]any `json:"event"`
	Calls           int            `json:"calls"`
	FunctionName    string         `json:"function_name"`
	FunctionVersion string         `json:"function_version"`
	RequestID       string         `json:"request_id"`
	Greeting        *string        `json:"greeting"`
	ClientCustom    map[string]any `json:"client_custom"`
	Marker          string         `json:"marker"`
}

func invokeJSON(t *testing.T, c *lambda.Client, in *lambda.InvokeInput) (*lambda.InvokeOutput, fnOutput) {
	t.Helper()
	out, err := c.Invoke(bg, in)
	if err != nil {
		t.Fatalf("invoke %s: %v", aws.ToString(in.FunctionName), err)
	}
	var fo fnOutput
	if out.FunctionError == nil {
		if err := json.Unmarshal(out.Payload, &fo); err != nil {
			t.Fatalf("invoke %s: payload %q: %v", aws.ToString(in.FunctionName), out.Payload, err)
		}
	}
	return out, fo
}

// TestSDKLifecycle drives one node with aws-sdk-go-v2 through the whole
// function lifecycle, for every runtime.
func TestSDKLifecycle(t *testing.T) {
	a := startTestAgent(t)
	c, creds := adminClient(t, a)

	runtimes := []struct {
		name, runtime, handler string
		zip                    []byte
	}{
		{"py-fn", "python3.11", "app.handler", pythonZip(t, "v1")},
		{"node-fn", "nodejs20.x", "index.handler", nodeZip(t)},
		{"go-fn", "provided.al2023", "bootstrap", goZip(t)},
	}
	for _, rt := range runtimes {
		out, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{
			FunctionName: aws.String(rt.name),
			Runtime:      types.Runtime(rt.runtime),
			Handler:      aws.String(rt.handler),
			Role:         aws.String(testRole),
			Code:         &types.FunctionCode{ZipFile: rt.zip},
			Environment:  &types.Environment{Variables: map[string]string{"GREETING": "hello-" + rt.name}},
		})
		if err != nil {
			t.Fatalf("create %s: %v", rt.name, err)
		}
		wantARN := fmt.Sprintf("arn:aws:lambda:local:%s:function:%s", creds.AccountID, rt.name)
		if aws.ToString(out.FunctionArn) != wantARN || aws.ToString(out.Version) != "$LATEST" || out.State != types.StateActive {
			t.Fatalf("create %s: arn %s version %s state %s", rt.name, aws.ToString(out.FunctionArn), aws.ToString(out.Version), out.State)
		}
		cc := base64.StdEncoding.EncodeToString([]byte(`{"custom":{"team":"stoke"}}`))
		inv, fo := invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String(rt.name), Payload: []byte(`{"n":1}`), ClientContext: aws.String(cc)})
		if inv.StatusCode != 200 || aws.ToString(inv.ExecutedVersion) != "$LATEST" {
			t.Fatalf("%s: status %d executed %s", rt.name, inv.StatusCode, aws.ToString(inv.ExecutedVersion))
		}
		if fo.FunctionName != rt.name || fo.Greeting == nil || *fo.Greeting != "hello-"+rt.name || fo.Event["n"] != 1.0 {
			t.Fatalf("%s: function saw %+v", rt.name, fo)
		}
		if fo.ClientCustom["team"] != "stoke" {
			t.Fatalf("%s: client context custom = %v", rt.name, fo.ClientCustom)
		}
		// Warm reuse keeps module state.
		_, again := invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String(rt.name)})
		if again.Calls != fo.Calls+1 {
			t.Fatalf("%s: calls %d then %d: the sandbox was not reused", rt.name, fo.Calls, again.Calls)
		}
		// Handler errors come back as Unhandled with Lambda's body.
		failed, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String(rt.name), Payload: []byte(`{"op":"error","value":"x"}`)})
		if err != nil || aws.ToString(failed.FunctionError) != "Unhandled" || !strings.Contains(string(failed.Payload), "errorMessage") {
			t.Fatalf("%s: error invoke: %v %q %s", rt.name, err, aws.ToString(failed.FunctionError), failed.Payload)
		}
	}

	// The request id the caller gets is the one the function saw and logged.
	var hdrs http.Header
	tail, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("py-fn"), Payload: []byte(`{"op":"print","value":"tail-me"}`),
		LogType: types.LogTypeTail}, func(o *lambda.Options) {
		o.APIOptions = append(o.APIOptions, captureHeaders(&hdrs))
	})
	if err != nil {
		t.Fatal(err)
	}
	var tailOut fnOutput
	_ = json.Unmarshal(tail.Payload, &tailOut)
	logText, _ := base64.StdEncoding.DecodeString(aws.ToString(tail.LogResult))
	reqID := hdrs.Get("X-Amzn-Requestid")
	if reqID == "" || tailOut.RequestID != reqID || !strings.Contains(string(logText), "START RequestId: "+reqID) ||
		!strings.Contains(string(logText), "tail-me") || !strings.Contains(string(logText), "REPORT RequestId: "+reqID) {
		t.Fatalf("request id %q, function saw %q, log tail:\n%s", reqID, tailOut.RequestID, logText)
	}

	// DryRun checks without running.
	dry, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("py-fn"), InvocationType: types.InvocationTypeDryRun})
	if err != nil || dry.StatusCode != 204 {
		t.Fatalf("dry run: %v status %d", err, dry.StatusCode)
	}

	// Update configuration and code; publish versions 1 and 2.
	cfgOut, err := c.UpdateFunctionConfiguration(bg, &lambda.UpdateFunctionConfigurationInput{
		FunctionName: aws.String("py-fn"), MemorySize: aws.Int32(256), Description: aws.String("first"),
	})
	if err != nil || aws.ToInt32(cfgOut.MemorySize) != 256 || aws.ToString(cfgOut.Handler) != "app.handler" {
		t.Fatalf("update config: %v %+v", err, cfgOut)
	}
	v1, err := c.PublishVersion(bg, &lambda.PublishVersionInput{FunctionName: aws.String("py-fn")})
	if err != nil || aws.ToString(v1.Version) != "1" {
		t.Fatalf("publish 1: %v", err)
	}
	if _, err := c.PublishVersion(bg, &lambda.PublishVersionInput{FunctionName: aws.String("py-fn"), CodeSha256: aws.String("wrong")}); !isErr[*types.PreconditionFailedException](err) {
		t.Fatalf("publish with a wrong CodeSha256: %v", err)
	}
	if _, err := c.UpdateFunctionCode(bg, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("py-fn"), ZipFile: pythonZip(t, "v2"),
		RevisionId: aws.String("stale-revision")}); !isErr[*types.PreconditionFailedException](err) {
		t.Fatalf("update code with a stale RevisionId: %v", err)
	}
	code2, err := c.UpdateFunctionCode(bg, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String("py-fn"), ZipFile: pythonZip(t, "v2")})
	if err != nil || aws.ToString(code2.CodeSha256) == aws.ToString(v1.CodeSha256) {
		t.Fatalf("update code: %v", err)
	}
	v2, err := c.PublishVersion(bg, &lambda.PublishVersionInput{FunctionName: aws.String("py-fn"), CodeSha256: code2.CodeSha256})
	if err != nil || aws.ToString(v2.Version) != "2" {
		t.Fatalf("publish 2: %v", err)
	}
	_, latest := invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String("py-fn")})
	_, one := invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String("py-fn:1")})
	if latest.Marker != "v2" || one.Marker != "v1" || one.FunctionVersion != "1" {
		t.Fatalf("$LATEST ran %q, version 1 ran %q (function_version %q)", latest.Marker, one.Marker, one.FunctionVersion)
	}
	versions, err := c.ListVersionsByFunction(bg, &lambda.ListVersionsByFunctionInput{FunctionName: aws.String("py-fn")})
	if err != nil || len(versions.Versions) != 3 {
		t.Fatalf("list versions: %v (%d)", err, len(versions.Versions))
	}

	// Alias "live" at 1 with 10% on 2: over 2,000 invokes the share on 2
	// stays within 3 standard deviations of 10%.
	al, err := c.CreateAlias(bg, &lambda.CreateAliasInput{FunctionName: aws.String("py-fn"), Name: aws.String("live"),
		FunctionVersion: aws.String("1"), RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{"2": 0.1}}})
	if err != nil || !strings.HasSuffix(aws.ToString(al.AliasArn), ":function:py-fn:live") {
		t.Fatalf("create alias: %v", err)
	}
	const n = 2000
	onTwo := 0
	for range n {
		out, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("py-fn"), Qualifier: aws.String("live")})
		if err != nil {
			t.Fatal(err)
		}
		switch aws.ToString(out.ExecutedVersion) {
		case "2":
			onTwo++
		case "1":
		default:
			t.Fatalf("alias executed version %q", aws.ToString(out.ExecutedVersion))
		}
	}
	sigma := math.Sqrt(n * 0.1 * 0.9)
	if math.Abs(float64(onTwo)-n*0.1) > 3*sigma {
		t.Fatalf("%d of %d invokes ran version 2; want 200 ± %.0f", onTwo, n, 3*sigma)
	}
	t.Logf("weighted alias: %d/%d on version 2", onTwo, n)

	// Deleting a version an alias references is refused; after the alias
	// moves, the version and then the function can go.
	if _, err := c.DeleteFunction(bg, &lambda.DeleteFunctionInput{FunctionName: aws.String("py-fn"), Qualifier: aws.String("2")}); !isErr[*types.ResourceConflictException](err) {
		t.Fatalf("delete referenced version: %v", err)
	}
	if _, err := c.UpdateAlias(bg, &lambda.UpdateAliasInput{FunctionName: aws.String("py-fn"), Name: aws.String("live"), FunctionVersion: aws.String("1"),
		RoutingConfig: &types.AliasRoutingConfiguration{AdditionalVersionWeights: map[string]float64{}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteFunction(bg, &lambda.DeleteFunctionInput{FunctionName: aws.String("py-fn"), Qualifier: aws.String("2")}); err != nil {
		t.Fatalf("delete version 2: %v", err)
	}
	if _, err := c.GetFunction(bg, &lambda.GetFunctionInput{FunctionName: aws.String("py-fn"), Qualifier: aws.String("2")}); !isErr[*types.ResourceNotFoundException](err) {
		t.Fatalf("get deleted version: %v", err)
	}
	if _, err := c.DeleteFunction(bg, &lambda.DeleteFunctionInput{FunctionName: aws.String("py-fn")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("py-fn")}); !isErr[*types.ResourceNotFoundException](err) {
		t.Fatalf("invoke deleted function: %v", err)
	}
}

// TestSDKReadsAndDownloads covers GetFunction's code download, listing with
// pagination, tags, concurrency and account settings.
func TestSDKReadsAndDownloads(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	zip := pythonZip(t, "dl")
	for i := range 5 {
		if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String(fmt.Sprintf("f%d", i)), Runtime: types.RuntimePython311,
			Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: zip}, Publish: i == 0,
			Tags: map[string]string{"team": "a"}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.GetFunction(bg, &lambda.GetFunctionInput{FunctionName: aws.String("f0")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(aws.ToString(got.Code.Location))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != string(zip) {
		t.Fatalf("Code.Location: status %d, %d bytes; want the original %d-byte zip", resp.StatusCode, len(body), len(zip))
	}
	tampered := strings.Replace(aws.ToString(got.Code.Location), "signature=", "signature=00", 1)
	if resp, err := http.Get(tampered); err != nil || resp.StatusCode != 403 {
		t.Fatalf("tampered Code.Location: %v %d", err, resp.StatusCode)
	}
	if got.Tags["team"] != "a" {
		t.Fatalf("tags = %v", got.Tags)
	}

	var names []string
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{MaxItems: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(bg)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Functions {
			names = append(names, aws.ToString(f.FunctionName))
		}
	}
	if strings.Join(names, ",") != "f0,f1,f2,f3,f4" {
		t.Fatalf("paginated list = %v", names)
	}
	all, err := c.ListFunctions(bg, &lambda.ListFunctionsInput{FunctionVersion: types.FunctionVersionAll})
	if err != nil || len(all.Functions) != 6 {
		t.Fatalf("list ALL: %v, %d configurations (want 5 $LATEST + version 1 of f0)", err, len(all.Functions))
	}

	if _, err := c.PutFunctionConcurrency(bg, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("f1"), ReservedConcurrentExecutions: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	conc, err := c.GetFunctionConcurrency(bg, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("f1")})
	if err != nil || aws.ToInt32(conc.ReservedConcurrentExecutions) != 10 {
		t.Fatalf("get concurrency: %v", err)
	}
	if _, err := c.PutFunctionConcurrency(bg, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("f2"), ReservedConcurrentExecutions: aws.Int32(895)}); !isErr[*types.InvalidParameterValueException](err) {
		t.Fatalf("reserving past the unreserved minimum: %v", err)
	}
	settings, err := c.GetAccountSettings(bg, &lambda.GetAccountSettingsInput{})
	if err != nil || settings.AccountLimit.ConcurrentExecutions != 1000 || aws.ToInt32(settings.AccountLimit.UnreservedConcurrentExecutions) != 990 ||
		settings.AccountUsage.FunctionCount != 5 || settings.AccountUsage.TotalCodeSize != int64(len(zip)) {
		t.Fatalf("account settings: %v %+v %+v", err, settings.AccountLimit, settings.AccountUsage)
	}
	if _, err := c.DeleteFunctionConcurrency(bg, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String("f1")}); err != nil {
		t.Fatal(err)
	}

	arn := aws.ToString(got.Configuration.FunctionArn)
	if _, err := c.TagResource(bg, &lambda.TagResourceInput{Resource: aws.String(arn), Tags: map[string]string{"env": "dev"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UntagResource(bg, &lambda.UntagResourceInput{Resource: aws.String(arn), TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTags(bg, &lambda.ListTagsInput{Resource: aws.String(arn)})
	if err != nil || len(tags.Tags) != 1 || tags.Tags["env"] != "dev" {
		t.Fatalf("tags after tag+untag: %v %v", err, tags.Tags)
	}
	// A partial ARN works wherever a name does.
	partial := strings.TrimPrefix(arn, "arn:aws:lambda:local:")
	if _, err := c.GetFunctionConfiguration(bg, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(partial)}); err != nil {
		t.Fatalf("get by partial ARN %s: %v", partial, err)
	}
}

func isErr[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

// TestMetricsCountInvocations checks /metrics reflects what happened:
// successes, function errors, throttles with their reason, cold starts,
// each series under its account, so two tenants' functions of one name
// never share a series.
func TestMetricsCountInvocations(t *testing.T) {
	a := startTestAgent(t)
	c, creds := adminClient(t, a)
	other := createTenant(t, a, c, "metrics-other")
	oc := sdkClient(a, other)
	for _, cl := range []*lambda.Client{c, oc} {
		if _, err := cl.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("m"), Runtime: types.RuntimePython311,
			Handler: aws.String("app.handler"), Role: aws.String(testRole), Code: &types.FunctionCode{ZipFile: pythonZip(t, "m")}}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		invokeJSON(t, c, &lambda.InvokeInput{FunctionName: aws.String("m")})
	}
	invokeJSON(t, oc, &lambda.InvokeInput{FunctionName: aws.String("m")})
	c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("m"), Payload: []byte(`{"op":"error"}`)})
	c.PutFunctionConcurrency(bg, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("m"), ReservedConcurrentExecutions: aws.Int32(0)})
	c.Invoke(bg, &lambda.InvokeInput{FunctionName: aws.String("m")})

	resp, err := http.Get("http://" + a.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	me, them := `account="`+creds.AccountID+`",`, `account="`+other.AccountID+`",`
	for _, want := range []string{
		`stoke_invocations_total{` + me + `function="m",outcome="success"} 3`,
		`stoke_invocations_total{` + me + `function="m",outcome="function_error"} 1`,
		`stoke_invocations_total{` + me + `function="m",outcome="throttled"} 1`,
		`stoke_throttles_total{` + me + `function="m",reason="ReservedFunctionConcurrentInvocationLimitExceeded"} 1`,
		`stoke_cold_starts_total{` + me + `function="m"} 1`,
		`stoke_invocation_duration_seconds_count{` + me + `function="m"} 4`,
		`stoke_invocations_total{` + them + `function="m",outcome="success"} 1`,
		`stoke_cold_starts_total{` + them + `function="m"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
