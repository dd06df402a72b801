package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

// `stoke fn` manages functions for people without the AWS CLI. It speaks
// the same Lambda API through aws-sdk-go-v2.

const fnUsage = `usage: stoke fn <command> [flags] NAME [args]

commands:
  create NAME        create a function from a folder (--dir) or a zip (--zip)
  update-code NAME   upload new code from --dir or --zip
  update-config NAME change memory, timeout, handler, runtime, environment, description
  invoke NAME        invoke; payload from an argument, --file FILE, or - for stdin
  list               list functions
  get NAME           show a function's configuration
  delete NAME        delete a function (or one version with --qualifier)
  publish NAME       publish a version of $LATEST
  alias create|update|list|delete NAME [ALIAS]
  concurrency put NAME N | delete NAME

Client flags (every command): -endpoint, -data-dir, -credentials, -region, -json`

func runFn(args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, fnUsage)
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "alias", "concurrency":
		if len(rest) == 0 {
			return fmt.Errorf("stoke fn %s needs a subcommand\n%s", sub, fnUsage)
		}
		sub, rest = sub+" "+rest[0], rest[1:]
	}
	cmd, ok := fnCommands[sub]
	if !ok {
		return fmt.Errorf("unknown command %q\n%s", sub, fnUsage)
	}
	f := &fnFlags{fs: flag.NewFlagSet("fn "+sub, flag.ContinueOnError)}
	f.client.register(f.fs)
	f.fs.BoolVar(&f.json, "json", false, "print JSON for scripts instead of tables")
	cmd.flags(f)
	if err := parseInterleaved(f.fs, rest); err != nil {
		return err
	}
	if f.fs.NArg() < cmd.args {
		return fmt.Errorf("stoke fn %s needs %d argument(s)\n%s", sub, cmd.args, fnUsage)
	}
	var progress io.Writer
	if !f.json {
		progress = os.Stderr
	}
	c, err := f.client.lambdaClient(progress)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	return plainAPIError(cmd.run(ctx, c, f))
}

// plainAPIError shortens the SDK's error chain to "Exception: message".
func plainAPIError(err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
	}
	return err
}

// parseInterleaved parses fs's flags wherever they stand among args, so
// `stoke fn invoke NAME --tail` works like `stoke fn invoke --tail NAME`;
// afterwards fs.Args() holds the positional arguments in order. Whether a
// flag takes a value is the FlagSet's to say (bool flags do not), so no
// list of flag names has to be kept beside it. A lone "-" is positional,
// and "--" ends the flags: what follows is positional even if it starts
// with "-" (a negative number as a payload).
func parseInterleaved(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

type fnFlags struct {
	fs     *flag.FlagSet
	client clientFlags
	json   bool

	dir, zipFile, runtime, handler, role, description string
	memory, timeout                                   int32Flag
	env                                               multiFlag
	weights                                           multiFlag
	publish, tail                                     bool
	qualifier, file, aliasVersion                     string
}

// int32Flag is an integer flag in the range of the API's int32 fields:
// a larger number is refused instead of wrapping around to another one.
type int32Flag int32

func (v *int32Flag) String() string { return strconv.Itoa(int(*v)) }
func (v *int32Flag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return err
	}
	*v = int32Flag(n)
	return nil
}

type fnCommand struct {
	args  int
	flags func(*fnFlags)
	run   func(context.Context, *lambda.Client, *fnFlags) error
}

func codeFlags(f *fnFlags) {
	f.fs.StringVar(&f.dir, "dir", "", "folder to zip as the function's code")
	f.fs.StringVar(&f.zipFile, "zip", "", "a ready .zip package")
	f.fs.BoolVar(&f.publish, "publish", false, "publish a version after the change")
}

func configFlags(f *fnFlags) {
	f.fs.StringVar(&f.runtime, "runtime", "", "runtime, e.g. python3.11, nodejs20.x, provided.al2023")
	f.fs.StringVar(&f.handler, "handler", "", "handler, e.g. app.handler")
	f.fs.StringVar(&f.description, "description", "", "description")
	f.fs.Var(&f.memory, "memory", "memory in MB (128-10240)")
	f.fs.Var(&f.timeout, "timeout", "timeout in seconds (1-900)")
	f.fs.Var(&f.env, "env", "environment variable KEY=VALUE (repeatable)")
}

var fnCommands = map[string]fnCommand{
	"create": {1, func(f *fnFlags) {
		codeFlags(f)
		configFlags(f)
		f.fs.StringVar(&f.role, "role", "arn:aws:iam::000000000000:role/stoke-function", "execution role ARN (kept for Lambda compatibility)")
	}, fnCreate},
	"update-code":   {1, codeFlags, fnUpdateCode},
	"update-config": {1, configFlags, fnUpdateConfig},
	"invoke": {1, func(f *fnFlags) {
		f.fs.StringVar(&f.file, "file", "", "read the payload from this file")
		f.fs.StringVar(&f.qualifier, "qualifier", "", "version or alias")
		f.fs.BoolVar(&f.tail, "tail", false, "print the last 4 KB of the invocation's log")
	}, fnInvoke},
	"list": {0, func(*fnFlags) {}, fnList},
	"get": {1, func(f *fnFlags) {
		f.fs.StringVar(&f.qualifier, "qualifier", "", "version or alias")
	}, fnGet},
	"delete": {1, func(f *fnFlags) {
		f.fs.StringVar(&f.qualifier, "qualifier", "", "delete only this version")
	}, fnDelete},
	"publish": {1, func(f *fnFlags) {
		f.fs.StringVar(&f.description, "description", "", "version description")
	}, fnPublish},
	"alias create": {2, aliasFlags, fnAliasCreate},
	"alias update": {2, aliasFlags, fnAliasUpdate},
	"alias list":   {1, func(*fnFlags) {}, fnAliasList},
	"alias delete": {2, func(*fnFlags) {}, fnAliasDelete},
	"concurrency put": {2, func(*fnFlags) {}, func(ctx context.Context, c *lambda.Client, f *fnFlags) error {
		var n int32Flag
		if err := n.Set(f.fs.Arg(1)); err != nil {
			return fmt.Errorf("concurrency must be a number: %q", f.fs.Arg(1))
		}
		out, err := c.PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String(f.fs.Arg(0)), ReservedConcurrentExecutions: aws.Int32(int32(n))})
		if err != nil {
			return err
		}
		return printJSONOr(f.json, map[string]any{"ReservedConcurrentExecutions": out.ReservedConcurrentExecutions}, func(w io.Writer) {
			fmt.Fprintf(w, "%s: reserved concurrency %d\n", f.fs.Arg(0), aws.ToInt32(out.ReservedConcurrentExecutions))
		})
	}},
	"concurrency delete": {1, func(*fnFlags) {}, func(ctx context.Context, c *lambda.Client, f *fnFlags) error {
		_, err := c.DeleteFunctionConcurrency(ctx, &lambda.DeleteFunctionConcurrencyInput{FunctionName: aws.String(f.fs.Arg(0))})
		if err == nil && !f.json {
			fmt.Printf("%s: reserved concurrency removed\n", f.fs.Arg(0))
		}
		return err
	}},
}

func aliasFlags(f *fnFlags) {
	f.fs.StringVar(&f.aliasVersion, "version", "", "version the alias points to")
	f.fs.StringVar(&f.description, "description", "", "alias description")
	f.fs.Var(&f.weights, "weight", "routing weight VERSION=FRACTION for a second version (e.g. 2=0.1)")
}

// codeBytes returns the zip to upload: --zip as is, or --dir zipped.
func codeBytes(f *fnFlags) ([]byte, error) {
	switch {
	case f.zipFile != "" && f.dir != "":
		return nil, errors.New("give --dir or --zip, not both")
	case f.zipFile != "":
		return os.ReadFile(f.zipFile)
	case f.dir != "":
		return zipDir(f.dir)
	}
	return nil, errors.New("code is required: --dir FOLDER or --zip FILE")
}

// zipDir zips a folder the way Lambda expects: paths relative to it,
// executable bits kept, symlinks stored as links, entries sorted.
func zipDir(dir string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, path := range paths {
		rel, _ := filepath.Rel(dir, path)
		info, err := os.Lstat(path)
		if err != nil {
			return nil, err
		}
		hdr, err := zip.FileInfoHeader(info)
		if err != nil {
			return nil, err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		} else {
			hdr.Method = zip.Deflate
		}
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return nil, err
			}
			if _, err := io.WriteString(w, target); err != nil {
				return nil, err
			}
		case info.Mode().IsRegular():
			if err := copyFile(w, path); err != nil {
				return nil, err
			}
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copyFile streams the file at path into w.
func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func envMap(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--env wants KEY=VALUE, got %q", p)
		}
		m[k] = v
	}
	return m, nil
}

func fnCreate(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	code, err := codeBytes(f)
	if err != nil {
		return err
	}
	if f.runtime == "" || f.handler == "" {
		return errors.New("--runtime and --handler are required")
	}
	env, err := envMap(f.env)
	if err != nil {
		return err
	}
	in := &lambda.CreateFunctionInput{FunctionName: aws.String(f.fs.Arg(0)), Runtime: types.Runtime(f.runtime), Handler: aws.String(f.handler),
		Role: aws.String(f.role), Code: &types.FunctionCode{ZipFile: code}, Publish: f.publish, Description: aws.String(f.description)}
	if f.memory > 0 {
		in.MemorySize = aws.Int32(int32(f.memory))
	}
	if f.timeout > 0 {
		in.Timeout = aws.Int32(int32(f.timeout))
	}
	if env != nil {
		in.Environment = &types.Environment{Variables: env}
	}
	out, err := c.CreateFunction(ctx, in)
	if err != nil {
		return err
	}
	return printConfig(f, configOf(out))
}

func fnUpdateCode(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	code, err := codeBytes(f)
	if err != nil {
		return err
	}
	out, err := c.UpdateFunctionCode(ctx, &lambda.UpdateFunctionCodeInput{FunctionName: aws.String(f.fs.Arg(0)), ZipFile: code, Publish: f.publish})
	if err != nil {
		return err
	}
	return printConfig(f, configOf(out))
}

func fnUpdateConfig(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	in := &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String(f.fs.Arg(0))}
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	if set["runtime"] {
		in.Runtime = types.Runtime(f.runtime)
	}
	if set["handler"] {
		in.Handler = aws.String(f.handler)
	}
	if set["description"] {
		in.Description = aws.String(f.description)
	}
	if set["memory"] {
		in.MemorySize = aws.Int32(int32(f.memory))
	}
	if set["timeout"] {
		in.Timeout = aws.Int32(int32(f.timeout))
	}
	if set["env"] {
		env, err := envMap(f.env)
		if err != nil {
			return err
		}
		in.Environment = &types.Environment{Variables: env}
	}
	out, err := c.UpdateFunctionConfiguration(ctx, in)
	if err != nil {
		return err
	}
	return printConfig(f, configOf(out))
}

func fnInvoke(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	var payload []byte
	var err error
	switch {
	case f.file != "":
		payload, err = os.ReadFile(f.file)
	case f.fs.NArg() > 1 && f.fs.Arg(1) == "-":
		payload, err = io.ReadAll(os.Stdin)
	case f.fs.NArg() > 1:
		payload = []byte(f.fs.Arg(1))
	}
	if err != nil {
		return err
	}
	in := &lambda.InvokeInput{FunctionName: aws.String(f.fs.Arg(0)), Payload: payload}
	if f.qualifier != "" {
		in.Qualifier = aws.String(f.qualifier)
	}
	if f.tail {
		in.LogType = types.LogTypeTail
	}
	out, err := c.Invoke(ctx, in)
	if err != nil {
		return err
	}
	logText, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
	if f.json {
		return json.NewEncoder(os.Stdout).Encode(map[string]any{
			"StatusCode": out.StatusCode, "ExecutedVersion": out.ExecutedVersion, "FunctionError": out.FunctionError,
			"Payload": json.RawMessage(orNull(out.Payload)), "Log": string(logText),
		})
	}
	if f.tail {
		fmt.Fprint(os.Stderr, string(logText))
	}
	os.Stdout.Write(out.Payload)
	fmt.Println()
	if out.FunctionError != nil {
		return fmt.Errorf("function error (%s), version %s", aws.ToString(out.FunctionError), aws.ToString(out.ExecutedVersion))
	}
	return nil
}

func orNull(b []byte) []byte {
	if len(b) == 0 || !json.Valid(b) {
		q, _ := json.Marshal(string(b))
		return q
	}
	return b
}

func fnList(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	var all []fnConfig
	p := lambda.NewListFunctionsPaginator(c, &lambda.ListFunctionsInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, fc := range page.Functions {
			all = append(all, configOf(&fc))
		}
	}
	return printJSONOr(f.json, all, func(w io.Writer) {
		fmt.Fprintln(w, "NAME\tRUNTIME\tMEMORY\tTIMEOUT\tCODE SIZE\tLAST MODIFIED")
		for _, fc := range all {
			fmt.Fprintf(w, "%s\t%s\t%d MB\t%d s\t%d\t%s\n", fc.FunctionName, fc.Runtime, fc.MemorySize, fc.Timeout, fc.CodeSize, fc.LastModified)
		}
	})
}

func fnGet(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	in := &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(f.fs.Arg(0))}
	if f.qualifier != "" {
		in.Qualifier = aws.String(f.qualifier)
	}
	out, err := c.GetFunctionConfiguration(ctx, in)
	if err != nil {
		return err
	}
	return printConfig(f, configOf(out))
}

func fnDelete(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	in := &lambda.DeleteFunctionInput{FunctionName: aws.String(f.fs.Arg(0))}
	if f.qualifier != "" {
		in.Qualifier = aws.String(f.qualifier)
	}
	if _, err := c.DeleteFunction(ctx, in); err != nil {
		return err
	}
	if !f.json {
		fmt.Printf("deleted %s\n", strings.TrimSuffix(f.fs.Arg(0)+":"+f.qualifier, ":"))
	}
	return nil
}

func fnPublish(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	out, err := c.PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String(f.fs.Arg(0)), Description: aws.String(f.description)})
	if err != nil {
		return err
	}
	return printConfig(f, configOf(out))
}

func routing(f *fnFlags) (*types.AliasRoutingConfiguration, error) {
	if len(f.weights) == 0 {
		return nil, nil
	}
	w := map[string]float64{}
	for _, p := range f.weights {
		v, frac, ok := strings.Cut(p, "=")
		x, err := strconv.ParseFloat(frac, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("--weight wants VERSION=FRACTION, got %q", p)
		}
		w[v] = x
	}
	return &types.AliasRoutingConfiguration{AdditionalVersionWeights: w}, nil
}

func fnAliasCreate(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	rc, err := routing(f)
	if err != nil {
		return err
	}
	if f.aliasVersion == "" {
		return errors.New("--version is required")
	}
	out, err := c.CreateAlias(ctx, &lambda.CreateAliasInput{FunctionName: aws.String(f.fs.Arg(0)), Name: aws.String(f.fs.Arg(1)),
		FunctionVersion: aws.String(f.aliasVersion), Description: aws.String(f.description), RoutingConfig: rc})
	if err != nil {
		return err
	}
	return printAliases(f, []aliasRow{aliasOf(out.Name, out.FunctionVersion, out.RoutingConfig, out.AliasArn)})
}

func fnAliasUpdate(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	rc, err := routing(f)
	if err != nil {
		return err
	}
	in := &lambda.UpdateAliasInput{FunctionName: aws.String(f.fs.Arg(0)), Name: aws.String(f.fs.Arg(1)), RoutingConfig: rc}
	if f.aliasVersion != "" {
		in.FunctionVersion = aws.String(f.aliasVersion)
	}
	out, err := c.UpdateAlias(ctx, in)
	if err != nil {
		return err
	}
	return printAliases(f, []aliasRow{aliasOf(out.Name, out.FunctionVersion, out.RoutingConfig, out.AliasArn)})
}

func fnAliasList(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	out, err := c.ListAliases(ctx, &lambda.ListAliasesInput{FunctionName: aws.String(f.fs.Arg(0))})
	if err != nil {
		return err
	}
	rows := []aliasRow{}
	for _, a := range out.Aliases {
		rows = append(rows, aliasOf(a.Name, a.FunctionVersion, a.RoutingConfig, a.AliasArn))
	}
	return printAliases(f, rows)
}

func fnAliasDelete(ctx context.Context, c *lambda.Client, f *fnFlags) error {
	_, err := c.DeleteAlias(ctx, &lambda.DeleteAliasInput{FunctionName: aws.String(f.fs.Arg(0)), Name: aws.String(f.fs.Arg(1))})
	if err == nil && !f.json {
		fmt.Printf("deleted alias %s:%s\n", f.fs.Arg(0), f.fs.Arg(1))
	}
	return err
}

// fnConfig is the part of a function configuration the CLI shows.
type fnConfig struct {
	FunctionName string
	FunctionArn  string
	Version      string
	Runtime      string
	Handler      string
	MemorySize   int32
	Timeout      int32
	CodeSize     int64
	CodeSha256   string
	Description  string
	LastModified string
	RevisionId   string
	Environment  map[string]string `json:",omitempty"`
}

// configOf accepts any SDK output shaped like a FunctionConfiguration.
func configOf(v any) fnConfig {
	b, _ := json.Marshal(v)
	var raw struct {
		FunctionName, FunctionArn, Version, Runtime, Handler, CodeSha256, Description, LastModified, RevisionId *string
		MemorySize, Timeout                                                                                     *int32
		CodeSize                                                                                                int64
		Environment                                                                                             *struct{ Variables map[string]string }
	}
	_ = json.Unmarshal(b, &raw)
	out := fnConfig{FunctionName: aws.ToString(raw.FunctionName), FunctionArn: aws.ToString(raw.FunctionArn), Version: aws.ToString(raw.Version),
		Runtime: aws.ToString(raw.Runtime), Handler: aws.ToString(raw.Handler), MemorySize: aws.ToInt32(raw.MemorySize), Timeout: aws.ToInt32(raw.Timeout),
		CodeSize: raw.CodeSize, CodeSha256: aws.ToString(raw.CodeSha256), Description: aws.ToString(raw.Description),
		LastModified: aws.ToString(raw.LastModified), RevisionId: aws.ToString(raw.RevisionId)}
	if raw.Environment != nil {
		out.Environment = raw.Environment.Variables
	}
	return out
}

func printConfig(f *fnFlags, fc fnConfig) error {
	return printJSONOr(f.json, fc, func(w io.Writer) {
		for _, kv := range [][2]string{{"Name", fc.FunctionName}, {"ARN", fc.FunctionArn}, {"Version", fc.Version}, {"Runtime", fc.Runtime},
			{"Handler", fc.Handler}, {"Memory", fmt.Sprintf("%d MB", fc.MemorySize)}, {"Timeout", fmt.Sprintf("%d s", fc.Timeout)},
			{"Code size", strconv.FormatInt(fc.CodeSize, 10)}, {"CodeSha256", fc.CodeSha256}, {"Description", fc.Description},
			{"Last modified", fc.LastModified}, {"Revision", fc.RevisionId}} {
			fmt.Fprintf(w, "%s:\t%s\n", kv[0], kv[1])
		}
		keys := make([]string, 0, len(fc.Environment))
		for k := range fc.Environment {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "Env %s:\t%s\n", k, fc.Environment[k])
		}
	})
}

type aliasRow struct {
	Name, FunctionVersion, AliasArn string
	AdditionalVersionWeights        map[string]float64 `json:",omitempty"`
}

func aliasOf(name, version *string, rc *types.AliasRoutingConfiguration, arn *string) aliasRow {
	r := aliasRow{Name: aws.ToString(name), FunctionVersion: aws.ToString(version), AliasArn: aws.ToString(arn)}
	if rc != nil {
		r.AdditionalVersionWeights = rc.AdditionalVersionWeights
	}
	return r
}

func printAliases(f *fnFlags, rows []aliasRow) error {
	return printJSONOr(f.json, rows, func(w io.Writer) {
		fmt.Fprintln(w, "ALIAS\tVERSION\tROUTING\tARN")
		for _, r := range rows {
			var routes []string
			for v, x := range r.AdditionalVersionWeights {
				routes = append(routes, fmt.Sprintf("%s=%.0f%%", v, x*100))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Name, r.FunctionVersion, strings.Join(routes, ","), r.AliasArn)
		}
	})
}
