package client

import (
	"archive/zip"
	"bytes"
	_ "embed"
	"os"
)

// BootstrapZip is a provided.al2023 package whose bootstrap is a shell
// script: enough for control-plane work, which never runs it.
func BootstrapZip() []byte {
	return zipOf(map[string][]byte{"bootstrap": []byte("#!/bin/sh\nexit 1\n")}, map[string]os.FileMode{"bootstrap": 0o755})
}

//go:embed fn/chaosfn.py
var chaosFn []byte

// ChaosFunctionZip is the python3.11 package of the function invocation
// scenarios run (handler "chaosfn.handler"). It echoes the event's nonce,
// sleeps sleep_ms if asked, reports its execution interval from the
// sandbox's clock, its sandbox and marker (which upload of the code it
// runs), and prints "CHAOS-DELIVERY <nonce>" (DeliveryLine) as it starts
// and "CHAOS-EXEC ..." (ExecLine) as it ends to its log, which is how
// scenarios count executions.
func ChaosFunctionZip(marker string) []byte {
	return zipOf(map[string][]byte{"chaosfn.py": chaosFn, "marker.txt": []byte(marker + "\n")}, nil)
}

// DeliveryLine matches the log line the chaos function prints for each
// execution as it begins; its first group is the nonce.
const DeliveryLine = `CHAOS-DELIVERY (\S+)`

// ExecLine matches the line the chaos function prints when a handler
// returns: nonce, start and end (Unix nanoseconds, the sandbox's clock),
// sandbox and code marker. It is how scenarios see executions whose
// answer never reached the caller.
const ExecLine = `CHAOS-EXEC (\S+) (\d+) (\d+) (\S+) (\S*)`

func zipOf(files map[string][]byte, modes map[string]os.FileMode) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range files {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate}
		mode := os.FileMode(0o644)
		if m, ok := modes[name]; ok {
			mode = m
		}
		hdr.SetMode(mode)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			panic(err) // in-memory writes do not fail
		}
		_, _ = w.Write(data)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}
