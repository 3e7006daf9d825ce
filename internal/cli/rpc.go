package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/sluice-log/sluice/internal/transport"
)

// rpcActions are what Fluentd's HTTP RPC endpoints do; each is also a
// signal.
type rpcActions struct {
	flush  func()       // SIGUSR1
	reload func() error // SIGHUP, SIGUSR2
	stop   func()       // SIGTERM
}

// rpcHandler serves Fluentd's HTTP RPC (<system> rpc_endpoint) under its
// paths, answering {"ok":true}, or {"ok":false,"message":...} with status
// 500 when a reload is rejected. Unlike Fluentd, a reload answers once it
// is done, so the caller learns whether it was applied.
func rpcHandler(a rpcActions) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "message": err.Error()})
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
	}
	handle := func(path string, do func() error) {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) { reply(w, do()) })
	}
	stop := func() error { a.stop(); return nil }
	handle("/api/processes.interruptWorkers", stop)
	handle("/api/processes.killWorkers", stop)
	handle("/api/processes.flushBuffersAndKillWorkers", func() error { a.flush(); a.stop(); return nil })
	handle("/api/plugins.flushBuffers", func() error { a.flush(); return nil })
	// Sluice's reload keeps listeners and buffers of what did not change,
	// which is what Fluentd's graceful reload and zero-downtime restart are
	// for; all three do the same.
	handle("/api/config.reload", a.reload)
	handle("/api/config.gracefulReload", a.reload)
	handle("/api/processes.zeroDowntimeRestart", a.reload)
	return mux
}

// serveRPC listens on addr and serves h until ctx ends.
func serveRPC(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := transport.ServeHTTP(ctx, srv, ln); err != nil {
			logger.Error("rpc endpoint stopped", "err", err)
		}
	}()
	logger.Info("serving Fluentd's HTTP RPC", "addr", ln.Addr().String())
	return nil
}
