package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// runDLQ dispatches `stoke dlq <subcommand> FUNCTION ...`: the function's
// built-in dead-letter queue (DeadLetterConfig.TargetArn or an OnFailure
// destination set to arn:aws:stoke:REGION:ACCOUNT:dlq, or stoke:dlq), served
// by the agent under /stoke/v1/functions/{name}/dead-letters.
func runDLQ(args []string) error {
	subs := map[string]func([]string) error{
		"list":    dlqList,
		"show":    dlqShow,
		"redrive": func(a []string) error { return dlqAct("redrive", a) },
		"purge":   func(a []string) error { return dlqAct("purge", a) },
	}
	if len(args) == 0 || subs[args[0]] == nil {
		return errors.New("usage: stoke dlq list FUNCTION [--json] | show FUNCTION EVENT_ID | redrive FUNCTION (EVENT_ID... | --all) | purge FUNCTION (EVENT_ID... | --all)")
	}
	return subs[args[0]](args[1:])
}

// dlqFlagSet parses flags placed before or after the positional arguments
// (`stoke dlq list fn --json` and `stoke dlq list --json fn` both work).
func dlqFlagSet(name string, args []string, define func(*flag.FlagSet)) (*clientFlags, []string, error) {
	fs := flag.NewFlagSet("dlq "+name, flag.ContinueOnError)
	c := &clientFlags{}
	c.register(fs)
	if define != nil {
		define(fs)
	}
	if err := parseInterleaved(fs, args); err != nil {
		return nil, nil, err
	}
	return c, fs.Args(), nil
}

type dlqEntry struct {
	EventID                string          `json:"EventId"`
	FunctionArn            string          `json:"FunctionArn"`
	ExecutedVersion        string          `json:"ExecutedVersion"`
	Condition              string          `json:"Condition"`
	ErrorType              string          `json:"ErrorType,omitempty"`
	ErrorMessage           string          `json:"ErrorMessage,omitempty"`
	StatusCode             int             `json:"StatusCode,omitempty"`
	Attempts               int             `json:"Attempts"`
	ApproximateInvokeCount int             `json:"ApproximateInvokeCount"`
	AcceptedAt             string          `json:"AcceptedAt"`
	DeadLetteredAt         string          `json:"DeadLetteredAt"`
	PayloadSize            int64           `json:"PayloadSize"`
	Payload                json.RawMessage `json:"Payload,omitempty"`
	ClientContext          string          `json:"ClientContext,omitempty"`
}

func dlqPath(function string, rest ...string) string {
	p := "/stoke/v1/functions/" + url.PathEscape(function) + "/dead-letters"
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

func dlqList(args []string) error {
	var asJSON bool
	c, pos, err := dlqFlagSet("list", args, func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") })
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("usage: stoke dlq list FUNCTION [--json]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var all []dlqEntry
	marker := ""
	for {
		var page struct {
			DeadLetters []dlqEntry
			NextMarker  *string
		}
		path := dlqPath(pos[0]) + "?MaxItems=1000"
		if marker != "" {
			path += "&Marker=" + url.QueryEscape(marker)
		}
		if err := c.call(ctx, "GET", path, nil, &page); err != nil {
			return err
		}
		all = append(all, page.DeadLetters...)
		if page.NextMarker == nil {
			break
		}
		marker = *page.NextMarker
	}
	if asJSON {
		return printJSON(all)
	}
	if len(all) == 0 {
		fmt.Printf("the dead-letter queue of %s is empty\n", pos[0])
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT ID\tDEAD-LETTERED\tCONDITION\tATTEMPTS\tVERSION\tERROR")
	for _, e := range all {
		msg := e.ErrorType
		if e.ErrorMessage != "" {
			msg += ": " + e.ErrorMessage
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", e.EventID, e.DeadLetteredAt, e.Condition, e.Attempts, e.ExecutedVersion, oneLine(msg, 80))
	}
	return w.Flush()
}

// oneLine folds s onto one line of at most n bytes, cutting between
// characters (an error message may hold any UTF-8).
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func dlqShow(args []string) error {
	c, pos, err := dlqFlagSet("show", args, nil)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errors.New("usage: stoke dlq show FUNCTION EVENT_ID")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var e dlqEntry
	if err := c.call(ctx, "GET", dlqPath(pos[0], pos[1]), nil, &e); err != nil {
		return err
	}
	return printJSON(e)
}

// dlqAct redrives or purges the named events, or every one with --all.
func dlqAct(action string, args []string) error {
	var all bool
	c, pos, err := dlqFlagSet(action, args, func(fs *flag.FlagSet) {
		fs.BoolVar(&all, "all", false, "every event in the function's dead-letter queue")
	})
	if err != nil {
		return err
	}
	if len(pos) < 1 || (len(pos) == 1) != all {
		return fmt.Errorf("usage: stoke dlq %s FUNCTION (EVENT_ID... | --all)", action)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in := map[string]any{"All": all}
	if !all {
		in["EventIds"] = pos[1:]
	}
	var out struct {
		Redriven, Purged int
		EventIDs         []string `json:"EventIds"`
	}
	if err := c.call(ctx, "POST", dlqPath(pos[0], action), in, &out); err != nil {
		return err
	}
	n := out.Redriven + out.Purged
	verb := map[string]string{"redrive": "redriven (queued again, attempt count reset)", "purge": "purged"}[action]
	fmt.Println(strconv.Itoa(n) + " event(s) " + verb)
	return nil
}
