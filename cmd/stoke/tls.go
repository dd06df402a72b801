package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stokehq/stoke/cluster"
)

// runTLS handles `stoke tls ca create` and `stoke tls cert create`.
func runTLS(args []string) error {
	switch {
	case len(args) >= 2 && args[0] == "ca" && args[1] == "create":
		return tlsCACreate(args[2:])
	case len(args) >= 2 && args[0] == "cert" && args[1] == "create":
		return tlsCertCreate(args[2:])
	}
	return fmt.Errorf("usage: stoke tls ca create [flags] | stoke tls cert create --node ID --ip IP [--dns NAME] [flags]")
}

func tlsCACreate(args []string) error {
	fs := flag.NewFlagSet("tls ca create", flag.ContinueOnError)
	dir := fs.String("dir", ".", "directory to write stoke-ca.pem and stoke-ca-key.pem into")
	name := fs.String("name", "Stoke cluster CA", "CA common name")
	days := fs.Int("days", 3650, "validity in days")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *days <= 0 {
		return fmt.Errorf("--days %d: the CA must be valid for at least a day", *days)
	}
	cert, key, err := cluster.CreateCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(*dir, "stoke-ca.pem"), filepath.Join(*dir, "stoke-ca-key.pem")
	if err := writePair(certFile, cert, keyFile, key); err != nil {
		return err
	}
	fmt.Printf("wrote %s (give to every node) and %s (keep offline; 0600)\n", certFile, keyFile)
	return nil
}

// listFlag is a repeatable (or comma-separated) string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func tlsCertCreate(args []string) error {
	fs := flag.NewFlagSet("tls cert create", flag.ContinueOnError)
	nodeID := fs.String("node", "", "node id (the certificate's common name)")
	caFile := fs.String("ca", "stoke-ca.pem", "CA certificate")
	caKeyFile := fs.String("ca-key", "stoke-ca-key.pem", "CA private key")
	dir := fs.String("dir", ".", "directory to write NODE.pem and NODE-key.pem into")
	days := fs.Int("days", 825, "validity in days")
	var ips, dns listFlag
	fs.Var(&ips, "ip", "IP address peers dial this node at (repeatable)")
	fs.Var(&dns, "dns", "DNS name peers dial this node at (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *days <= 0 {
		return fmt.Errorf("--days %d: the certificate must be valid for at least a day", *days)
	}
	var parsed []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("--ip %q is not an IP address", s)
		}
		parsed = append(parsed, ip)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	caKey, err := os.ReadFile(*caKeyFile)
	if err != nil {
		return err
	}
	cert, key, err := cluster.CreateCert(caPEM, caKey, cluster.CertOptions{NodeID: *nodeID, IPs: parsed, DNSNames: dns,
		Validity: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(*dir, *nodeID+".pem"), filepath.Join(*dir, *nodeID+"-key.pem")
	if err := writePair(certFile, cert, keyFile, key); err != nil {
		return err
	}
	fmt.Printf("wrote %s and %s (0600); start the agent with --tls-ca %s --tls-cert %s --tls-key %s\n",
		certFile, keyFile, *caFile, certFile, keyFile)
	return nil
}

// writePair writes a certificate and its key, or neither: when the key
// cannot be written (its name is taken, the disk is full) the certificate
// just written is removed again, so a second run is not refused for it.
func writePair(certFile string, cert []byte, keyFile string, key []byte) error {
	if err := cluster.WritePEM(certFile, cert, false); err != nil {
		return err
	}
	if err := cluster.WritePEM(keyFile, key, true); err != nil {
		os.Remove(certFile)
		return err
	}
	return nil
}
