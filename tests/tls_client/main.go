// A tiny Go HTTPS client for tests/tls_rotation.rs: the API server is a Go program, so its
// TLS stack is the one that must accept revhook's certificates. It sends COUNT GET requests to
// URL, each on a new connection (no keep-alive, no session reuse), trusting only the CAs in
// CAFILE, SPACING apart, and prints "ok N failed M" (and each failure on stderr).
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: tls_client URL CAFILE COUNT SPACING")
		os.Exit(2)
	}
	url, caFile := os.Args[1], os.Args[2]
	count, err := strconv.Atoi(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "COUNT:", err)
		os.Exit(2)
	}
	spacing, err := time.ParseDuration(os.Args[4])
	if err != nil {
		fmt.Fprintln(os.Stderr, "SPACING:", err)
		os.Exit(2)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "no certificates in", caFile)
		os.Exit(2)
	}
	ok, failed := 0, 0
	for i := 0; i < count; i++ {
		transport := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DisableKeepAlives: true,
		}
		client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				ok++
			} else {
				failed++
				fmt.Fprintln(os.Stderr, "status", resp.StatusCode)
			}
		} else {
			failed++
			fmt.Fprintln(os.Stderr, err)
		}
		transport.CloseIdleConnections()
		time.Sleep(spacing)
	}
	fmt.Printf("ok %d failed %d\n", ok, failed)
}
