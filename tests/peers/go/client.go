// A net/http TLS client for cleartap's Go capture tests.
// Usage: client http1|http2 URL... Without -wait it requests at once; with CLEARTAP_GO_WAIT set
// it first reads a line from stdin (so a test can start it before the agent). For each URL it
// prints "PROTO STATUS BODYBYTES LOCALPORT".
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: client http1|http2 URL...")
		os.Exit(2)
	}
	transport := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	switch os.Args[1] {
	case "http1":
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	case "http2":
		transport.ForceAttemptHTTP2 = true
	default:
		fmt.Fprintln(os.Stderr, "protocol must be http1 or http2")
		os.Exit(2)
	}
	if os.Getenv("CLEARTAP_GO_WAIT") != "" {
		fmt.Println("waiting")
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	client := &http.Client{Transport: transport}
	for _, url := range os.Args[2:] {
		localPort := "?"
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
			if addr, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
				localPort = fmt.Sprint(addr.Port)
			}
		}}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		method, body := "GET", io.Reader(nil)
		if strings.HasSuffix(url, "/echo") {
			method, body = "POST", strings.NewReader(`{"ping":"pong"}`)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, body)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		req.Header.Set("Authorization", "Bearer go-s3cret")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Proto, resp.StatusCode, n, localPort)
	}
}
