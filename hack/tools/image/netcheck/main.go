// Command netcheck is the test cluster's network probe, small enough to ship in
// a scratch image:
//
//	netcheck serve ADDR        answer every HTTP request with the pod's name
//	netcheck get URL           GET the URL, print the body, exit 1 on failure
//	netcheck dial HOST:PORT    open a TCP connection, exit 1 when it fails
//	netcheck lookup NAME       resolve NAME, print the addresses
//	netcheck sleep             wait for SIGTERM
//
// Each client command gives up after -timeout; with -retry it tries again
// every 200ms until it succeeds or -timeout passes (a NetworkPolicy
// enforcer admits a new pod's address a moment after the pod starts).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 3*time.Second, "how long a client command waits")
	retry := flag.Bool("retry", false, "retry a failing client command until -timeout")
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: netcheck [-timeout D] serve ADDR | get URL | dial HOST:PORT | lookup NAME | sleep")
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	err := run(ctx, args, *timeout)
	for deadline := time.Now().Add(*timeout); err != nil && *retry && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		err = run(ctx, args, time.Until(deadline))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, timeout time.Duration) error {
	arg := func() string {
		if len(args) < 2 {
			return ""
		}
		return args[1]
	}
	switch args[0] {
	case "serve":
		return serve(ctx, arg())
	case "sleep":
		<-ctx.Done()
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch args[0] {
	case "get":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, arg(), nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Print(string(body))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("get %s: status %d", arg(), resp.StatusCode)
		}
		return nil
	case "dial":
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", arg())
		if err != nil {
			return err
		}
		fmt.Println("connected", c.RemoteAddr())
		return c.Close()
	case "lookup":
		addrs, err := net.DefaultResolver.LookupHost(ctx, arg())
		if err != nil {
			return err
		}
		fmt.Println(strings.Join(addrs, " "))
		return nil
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func serve(ctx context.Context, addr string) error {
	host, _ := os.Hostname()
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s\n", host)
		}),
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}
