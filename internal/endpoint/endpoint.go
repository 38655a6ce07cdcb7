// Package endpoint serves a daemon's HTTP endpoints (/metrics, /healthz)
// so that no local user can take them away: a TCP listener with a total
// connection cap and a cap per client (per uid for a local client, found
// with sock_diag; per address for a remote one), short header, read,
// write and idle timeouts, and a separate probe listener on a unix socket
// owned by root (mode 0600) for `encwatch status` and the service manager,
// which a user's connections to the TCP port cannot reach.
//
// The agent and the collector both serve through it.
package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Defaults of a Config.
const (
	// DefaultMaxConns caps the TCP listener's open connections: past it a
	// connection is closed at once, not queued, so that idle clients
	// cannot take the daemon's descriptors.
	DefaultMaxConns = 64
	// DefaultMaxPerClient caps one client's (one uid's, or one remote
	// address's) open TCP connections, so that one user cannot fill the
	// total for the others (a Prometheus scrape keeps one).
	DefaultMaxPerClient = 8
	// probeMaxConns and probeMaxPerClient cap the probe socket; only root
	// can connect to it.
	probeMaxConns     = 16
	probeMaxPerClient = 8
)

// Timeouts of every connection. A probe or a scrape sends its request at
// once; a client that does not is cut off after readHeaderTimeout.
const (
	readHeaderTimeout = 2 * time.Second
	readTimeout       = 5 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 10 * time.Second
	maxHeaderBytes    = 16 << 10
)

// Config is where an endpoint listens.
type Config struct {
	// Name is what errors and logs call the endpoint ("metrics").
	Name string
	// Address is the TCP HOST:PORT; "" listens on none.
	Address string
	// Listener, when set, is used instead of listening on Address (tests,
	// socket activation); Serve closes it.
	Listener net.Listener
	// ProbeSocket is the unix socket path of the probe listener; "" serves
	// none. Its directory is created 0755 if missing and must be owned by
	// this process's user and writable by no one else.
	ProbeSocket string
	// MaxConns and MaxPerClient cap the TCP listener; 0 is the default.
	MaxConns, MaxPerClient int
}

// Endpoint is a bound endpoint: the TCP listener, the probe listener, or
// both.
type Endpoint struct {
	name  string
	tcp   *limitListener
	probe *limitListener
	// probePath and probeID identify the socket file this endpoint made,
	// so that Close removes it and no other.
	probePath string
	probeID   fileID
	closeOnce sync.Once
}

// ErrProbeInUse is returned, wrapped, when another live process answers
// on the probe socket.
var ErrProbeInUse = errors.New("probe socket in use")

// Listen binds cfg's listeners before anything else starts, so that a
// taken port fails start-up rather than the running daemon. A taken port
// is an error naming the address and, when /proc tells, who holds it; a
// probe socket another live process answers on is ErrProbeInUse naming
// its pid. A Config with neither address nor socket gives an Endpoint
// that serves nothing.
func Listen(cfg Config) (*Endpoint, error) {
	if cfg.Name == "" {
		cfg.Name = "endpoint"
	}
	e := &Endpoint{name: cfg.Name}
	ln := cfg.Listener
	if ln == nil && cfg.Address != "" {
		var err error
		if ln, err = listenTCP(cfg.Name, cfg.Address); err != nil {
			return nil, err
		}
	}
	if ln != nil {
		maxConns, perClient := cfg.MaxConns, cfg.MaxPerClient
		if maxConns <= 0 {
			maxConns = DefaultMaxConns
		}
		if perClient <= 0 {
			perClient = DefaultMaxPerClient
		}
		e.tcp = newLimitListener(ln, maxConns, perClient, clientKey)
	}
	if cfg.ProbeSocket != "" {
		uln, id, err := listenProbe(cfg.ProbeSocket)
		if err != nil {
			if e.tcp != nil {
				e.tcp.Close()
			}
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
		e.probe = newLimitListener(uln, probeMaxConns, probeMaxPerClient, clientKey)
		e.probePath, e.probeID = cfg.ProbeSocket, id
	}
	return e, nil
}

// Addr is the TCP listener's address, or nil.
func (e *Endpoint) Addr() net.Addr {
	if e == nil || e.tcp == nil {
		return nil
	}
	return e.tcp.Addr()
}

// ProbeSocket is the probe socket's path, or "".
func (e *Endpoint) ProbeSocket() string {
	if e == nil {
		return ""
	}
	return e.probePath
}

// Close closes the listeners and removes the probe socket this endpoint
// made. Serve closes them itself when it returns.
func (e *Endpoint) Close() error {
	if e == nil {
		return nil
	}
	var err error
	e.closeOnce.Do(func() {
		if e.tcp != nil {
			err = errors.Join(err, ignoreClosed(e.tcp.Close()))
		}
		if e.probe != nil {
			err = errors.Join(err, ignoreClosed(e.probe.Close()))
			removeProbe(e.probePath, e.probeID)
		}
	})
	return err
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Serve serves h on every listener until ctx ends, then shuts the servers
// down (a second at most) and closes the endpoint. It never returns an
// error: a listener failing is logged and must not stop the daemon's other
// work, which often shares its errgroup.
func (e *Endpoint) Serve(ctx context.Context, h http.Handler, lg *logrus.Entry) error {
	if e == nil {
		return nil
	}
	defer e.Close()
	var wg sync.WaitGroup
	// The probe socket is named by its path: its listener's own address
	// is the private name it was bound under before the rename.
	for _, l := range []struct {
		ln    *limitListener
		field string
		where func() string
	}{{e.tcp, "address", func() string { return e.tcp.Addr().String() }}, {e.probe, "probe_socket", e.ProbeSocket}} {
		if l.ln == nil {
			continue
		}
		srv := newServer(h, lg)
		lg.WithFields(logrus.Fields{"endpoint": e.name, l.field: l.where()}).Info("serving the endpoint")
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop := context.AfterFunc(ctx, func() {
				sctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_ = srv.Shutdown(sctx)
				_ = srv.Close()
			})
			defer stop()
			if err := srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				lg.WithError(err).WithFields(logrus.Fields{"endpoint": e.name, l.field: l.where()}).Error("endpoint stopped; the daemon goes on")
			}
		}()
	}
	wg.Wait()
	return nil
}

// newServer is an http.Server with the endpoint's timeouts; its own errors
// (a client's bad TLS handshake, a refused header) are debug logs.
func newServer(h http.Handler, lg *logrus.Entry) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(lg.WriterLevel(logrus.DebugLevel), "", 0),
	}
}

// ProbeClient is an HTTP client whose every request goes to the probe
// socket at path, whatever the URL's host.
func ProbeClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
			DisableKeepAlives: true,
		},
	}
}

// probeExists reports whether path is a socket file.
func probeExists(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// ProbeAvailable reports whether the probe socket at path exists, for a
// client choosing between it and the TCP address.
func ProbeAvailable(path string) bool { return path != "" && probeExists(path) }
