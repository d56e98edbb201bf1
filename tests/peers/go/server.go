// A net/http TLS server (HTTP/1.1 and HTTP/2 by ALPN) for cleartap's Go capture tests.
// Usage: server PORT CERT KEY. Prints "ready" once listening; exits on SIGTERM. With
// CLEARTAP_GO_WRAP set, accepted connections are wrapped in a type that embeds net.Conn (as
// connection-limiting listeners do).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: server PORT CERT KEY")
		os.Exit(2)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 65536) // 1 MiB
	medium := big[:16384]
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"hello":"go"}`)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	})
	mux.HandleFunc("/16KiB", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(medium)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		buf.ReadFrom(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusCreated)
		w.Write(buf.Bytes())
	})
	srv := &http.Server{Addr: "127.0.0.1:" + os.Args[1], Handler: mux}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		srv.Shutdown(context.Background())
	}()
	listener, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("CLEARTAP_GO_WRAP") != "" {
		listener = wrappingListener{listener}
	}
	srv.TLSConfig = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	fmt.Println("ready")
	if err := srv.ServeTLS(listener, os.Args[2], os.Args[3]); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("bye")
}

type wrappingListener struct{ net.Listener }

type wrappedConn struct {
	net.Conn
	bytesRead int
}

func (l wrappingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &wrappedConn{Conn: c}, nil
}

func (c *wrappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.bytesRead += n
	return n, err
}
