package node

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// A published version is immutable: its description is the one $LATEST
// had when it was published (or the one PublishVersion gave), whatever
// $LATEST says later. Found by the chaos leader-kill scenario's
// linearizability check.
func TestVersionKeepsItsDescription(t *testing.T) {
	a := startTestAgent(t)
	c, _ := adminClient(t, a)
	if _, err := c.CreateFunction(bg, &lambda.CreateFunctionInput{FunctionName: aws.String("desc-fn"),
		Runtime: types.RuntimeProvidedal2023, Handler: aws.String("x"), Role: aws.String(testRole),
		Code:        &types.FunctionCode{ZipFile: zipFiles(t, map[string][]byte{"bootstrap": []byte("#!/bin/sh\n")}, nil)},
		Description: aws.String("first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishVersion(bg, &lambda.PublishVersionInput{FunctionName: aws.String("desc-fn")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateFunctionConfiguration(bg, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("desc-fn"),
		Description: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublishVersion(bg, &lambda.PublishVersionInput{FunctionName: aws.String("desc-fn"), Description: aws.String("release")}); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"1": "first", "2": "release", "$LATEST": "second"} {
		out, err := c.GetFunction(bg, &lambda.GetFunctionInput{FunctionName: aws.String("desc-fn"), Qualifier: aws.String(q)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.Configuration.Description); got != want {
			t.Errorf("version %s: description %q, want %q", q, got, want)
		}
	}
}
