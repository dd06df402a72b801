package cluster

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// This file is the one adapter between the loggers our dependencies want
// (hclog for raft, *log.Logger for memberlist) and log/slog.

// NewHCLogger returns an hclog.Logger that writes to l.
func NewHCLogger(l *slog.Logger, name string) hclog.Logger {
	return &hcBridge{l: l.With("component", name), name: name}
}

type hcBridge struct {
	l       *slog.Logger
	name    string
	implied []any
}

func hcToSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (b *hcBridge) Log(level hclog.Level, msg string, args ...any) {
	b.l.Log(context.Background(), hcToSlog(level), msg, args...)
}
func (b *hcBridge) Trace(msg string, args ...any) { b.Log(hclog.Trace, msg, args...) }
func (b *hcBridge) Debug(msg string, args ...any) { b.Log(hclog.Debug, msg, args...) }
func (b *hcBridge) Info(msg string, args ...any)  { b.Log(hclog.Info, msg, args...) }
func (b *hcBridge) Warn(msg string, args ...any)  { b.Log(hclog.Warn, msg, args...) }
func (b *hcBridge) Error(msg string, args ...any) { b.Log(hclog.Error, msg, args...) }
func (b *hcBridge) enabled(level hclog.Level) bool {
	return b.l.Enabled(context.Background(), hcToSlog(level))
}
func (b *hcBridge) IsTrace() bool        { return b.enabled(hclog.Trace) }
func (b *hcBridge) IsDebug() bool        { return b.enabled(hclog.Debug) }
func (b *hcBridge) IsInfo() bool         { return b.enabled(hclog.Info) }
func (b *hcBridge) IsWarn() bool         { return b.enabled(hclog.Warn) }
func (b *hcBridge) IsError() bool        { return b.enabled(hclog.Error) }
func (b *hcBridge) ImpliedArgs() []any   { return b.implied }
func (b *hcBridge) Name() string         { return b.name }
func (b *hcBridge) SetLevel(hclog.Level) {}
func (b *hcBridge) GetLevel() hclog.Level {
	for _, lv := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if b.enabled(lv) {
			return lv
		}
	}
	return hclog.Error
}
func (b *hcBridge) With(args ...any) hclog.Logger {
	return &hcBridge{l: b.l.With(args...), name: b.name, implied: append(append([]any{}, b.implied...), args...)}
}
func (b *hcBridge) Named(name string) hclog.Logger {
	return &hcBridge{l: b.l.With("subsystem", name), name: b.name + "." + name, implied: b.implied}
}
func (b *hcBridge) ResetNamed(name string) hclog.Logger {
	return &hcBridge{l: b.l.With("subsystem", name), name: name, implied: b.implied}
}
func (b *hcBridge) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return NewStdLogger(b.l)
}
func (b *hcBridge) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return &levelWriter{l: b.l}
}

// NewStdLogger returns a *log.Logger whose lines go to l. A leading level
// tag as memberlist and raft write them ("[DEBUG] memberlist: ...") sets the
// slog level and is stripped.
func NewStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{l: l, untagged: slog.LevelInfo}, "", 0)
}

// NewStdLoggerAt is NewStdLogger for a writer whose lines carry no level
// tag and all deserve level (net/http's server logs handler panics and
// accept errors that way: at Info they would vanish from a test's log).
func NewStdLoggerAt(l *slog.Logger, level slog.Level) *log.Logger {
	return log.New(&levelWriter{l: l, untagged: level}, "", 0)
}

type levelWriter struct {
	l        *slog.Logger
	untagged slog.Level
}

var levelTags = []struct {
	tag   string
	level slog.Level
}{
	{"[TRACE]", slog.LevelDebug - 4}, {"[DEBUG]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo},
	{"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError},
}

func (w *levelWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := w.untagged
	for _, t := range levelTags {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			level, line = t.level, strings.TrimSpace(rest)
			break
		}
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
