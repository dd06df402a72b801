package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"text/tabwriter"
	"time"
)

// `stoke account` and `stoke key` manage tenants (admin keys only);
// `stoke logs` reads a function's logs from every node.

func runAccount(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: stoke account create NAME [-concurrency N] | list")
	}
	var f struct {
		client      clientFlags
		json        bool
		concurrency int
	}
	fs := flag.NewFlagSet("account "+args[0], flag.ContinueOnError)
	f.client.register(fs)
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.IntVar(&f.concurrency, "concurrency", 0, "account concurrency limit (default 1000)")
	if err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type account struct {
		AccountId, Name, Created string
		ConcurrencyLimit         int32
	}
	switch args[0] {
	case "create":
		if fs.NArg() != 1 {
			return errors.New("usage: stoke account create NAME")
		}
		in := map[string]any{"Name": fs.Arg(0)}
		if f.concurrency > 0 {
			in["ConcurrencyLimit"] = f.concurrency
		}
		var out account
		if err := f.client.call(ctx, "POST", "/stoke/v1/accounts", in, &out); err != nil {
			return err
		}
		return printJSONOr(f.json, out, func(w io.Writer) {
			fmt.Fprintf(w, "created account %s (%s), concurrency limit %d\nmake it a key: stoke key create -account %s\n",
				out.AccountId, out.Name, out.ConcurrencyLimit, out.AccountId)
		})
	case "list":
		var out struct{ Accounts []account }
		if err := f.client.call(ctx, "GET", "/stoke/v1/accounts", nil, &out); err != nil {
			return err
		}
		return printJSONOr(f.json, out.Accounts, func(w io.Writer) {
			fmt.Fprintln(w, "ACCOUNT\tNAME\tCONCURRENCY\tCREATED")
			for _, a := range out.Accounts {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", a.AccountId, a.Name, a.ConcurrencyLimit, a.Created)
			}
		})
	}
	return fmt.Errorf("unknown account command %q (create, list)", args[0])
}

func runKey(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: stoke key create [-account ID] [-admin] | list [-account ID] | revoke KEY_ID")
	}
	var f struct {
		client      clientFlags
		json, admin bool
		account     string
		description string
	}
	fs := flag.NewFlagSet("key "+args[0], flag.ContinueOnError)
	f.client.register(fs)
	fs.BoolVar(&f.json, "json", false, "print JSON")
	fs.BoolVar(&f.admin, "admin", false, "the key may manage accounts, keys and the cluster")
	fs.StringVar(&f.account, "account", "", "account the key belongs to (default: the caller's)")
	fs.StringVar(&f.description, "description", "", "what the key is for")
	if err := parseInterleaved(fs, args[1:]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type key struct {
		AccessKeyId, SecretAccessKey, AccountId, Status, Description, Created string
		Admin                                                                 bool
	}
	switch args[0] {
	case "create":
		var out key
		if err := f.client.call(ctx, "POST", "/stoke/v1/keys", map[string]any{"AccountId": f.account, "Admin": f.admin, "Description": f.description}, &out); err != nil {
			return err
		}
		return printJSONOr(f.json, out, func(w io.Writer) {
			fmt.Fprintf(w, "# Stoke account %s; the secret is shown only now.\n[stoke-%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n",
				out.AccountId, out.AccountId, out.AccessKeyId, out.SecretAccessKey)
		})
	case "list":
		path := "/stoke/v1/keys"
		if f.account != "" {
			path += "?AccountId=" + url.QueryEscape(f.account)
		}
		var out struct{ Keys []key }
		if err := f.client.call(ctx, "GET", path, nil, &out); err != nil {
			return err
		}
		return printJSONOr(f.json, out.Keys, func(w io.Writer) {
			fmt.Fprintln(w, "KEY\tACCOUNT\tSTATUS\tADMIN\tCREATED\tDESCRIPTION")
			for _, k := range out.Keys {
				fmt.Fprintf(w, "%s\t%s\t%s\t%t\t%s\t%s\n", k.AccessKeyId, k.AccountId, k.Status, k.Admin, k.Created, k.Description)
			}
		})
	case "revoke":
		if fs.NArg() != 1 {
			return errors.New("usage: stoke key revoke KEY_ID")
		}
		var out key
		if err := f.client.call(ctx, "DELETE", "/stoke/v1/keys/"+url.PathEscape(fs.Arg(0)), nil, &out); err != nil {
			return err
		}
		return printJSONOr(f.json, out, func(w io.Writer) { fmt.Fprintf(w, "revoked %s\n", out.AccessKeyId) })
	}
	return fmt.Errorf("unknown key command %q (create, list, revoke)", args[0])
}

func runLogs(args []string) error {
	var f struct {
		client clientFlags
		json   bool
		follow bool
		since  string
		limit  int
	}
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	f.client.register(fs)
	fs.BoolVar(&f.json, "json", false, "print JSON lines")
	fs.BoolVar(&f.follow, "follow", false, "keep printing new records")
	fs.StringVar(&f.since, "since", "1h", "how far back: a duration (10m) or an RFC 3339 time")
	fs.IntVar(&f.limit, "limit", 1000, "at most this many records")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: stoke logs FUNCTION [-since 10m] [-follow]")
	}
	since := f.since
	// seen holds the records already printed, by their timestamp. Each
	// poll asks for records at or after the newest one printed, so only
	// those at that very timestamp can come back: older ones are dropped,
	// and a long --follow does not keep every line it printed.
	seen := map[string]string{}
	newest := "" // timestamp of the newest record printed, as the agent wrote it
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var out struct {
			Events []struct{ Timestamp, Stream, Node, Message string }
		}
		err := f.client.call(ctx, "GET", fmt.Sprintf("/stoke/v1/logs/%s?since=%s&limit=%d", url.PathEscape(fs.Arg(0)), url.QueryEscape(since), f.limit), nil, &out)
		cancel()
		if err != nil {
			return err
		}
		for _, e := range out.Events {
			key := e.Node + e.Stream + e.Timestamp + e.Message
			if _, ok := seen[key]; ok {
				continue
			}
			seen[key] = e.Timestamp
			if f.json {
				fmt.Printf(`{"timestamp":%q,"node":%q,"stream":%q,"message":%q}`+"\n", e.Timestamp, e.Node, e.Stream, e.Message)
			} else {
				fmt.Printf("%s %s %s\n", e.Timestamp, e.Stream, e.Message)
			}
			since, newest = e.Timestamp, e.Timestamp
		}
		if !f.follow {
			return nil
		}
		for k, ts := range seen {
			if ts < newest { // one layout, compared as the agent compares it
				delete(seen, k)
			}
		}
		if t, err := time.Parse("2006-01-02T15:04:05.000Z", since); err == nil {
			since = t.Format(time.RFC3339Nano)
		}
		time.Sleep(time.Second) // polling interval of --follow
	}
}

// printJSONOr prints v as indented JSON when asJSON, otherwise what text
// writes, aligned in columns at tabs.
func printJSONOr(asJSON bool, v any, text func(io.Writer)) error {
	if asJSON {
		return printJSON(v)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	text(w)
	return w.Flush()
}
