// Command attacker is what the collector endpoint tests run as nobody:
// "listen ADDR SECONDS" holds a port; "keepalive ADDR N SECONDS" opens N
// connections, sends one keep-alive GET /metrics on each and holds them.
package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 3 {
		return fmt.Errorf("usage: attacker listen ADDR SECONDS | keepalive ADDR N SECONDS")
	}
	switch args[0] {
	case "listen":
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		defer ln.Close()
		fmt.Println("listening")
		secs, _ := strconv.Atoi(args[2])
		time.Sleep(time.Duration(secs) * time.Second)
		return nil
	case "keepalive":
		n, _ := strconv.Atoi(args[2])
		secs, _ := strconv.Atoi(args[3])
		var held []net.Conn
		for range n {
			c, err := net.DialTimeout("tcp", args[1], time.Second)
			if err != nil {
				continue
			}
			fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n\r\n", args[1])
			held = append(held, c)
		}
		fmt.Printf("opened %d connections\n", len(held))
		time.Sleep(time.Duration(secs) * time.Second)
		return nil
	}
	return fmt.Errorf("unknown mode %q", args[0])
}
