package forward

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/sluice-log/sluice/internal/plugin"
)

// Unix is in_unix: the Forward protocol on a unix socket, as ECS FireLens
// configures for the task's containers. It is in_forward's server with
// in_forward's defaults (message bounds, receive_buffer_limit, ack and
// dedup), bound to a path instead of a port, with no heartbeats.
type Unix struct {
	Path    string `conf:"path" desc:"The socket's path. A socket file left there by an earlier run is replaced; any other kind of file fails the start."`
	Backlog int    `conf:"backlog" desc:"Accepted for Fluentd compatibility." ignored:"Go listens with the kernel's maximum backlog (net.core.somaxconn)"`
	Tag     string `conf:"tag" desc:"Give every event this tag instead of the one it came with."`

	in *Input
}

// defaultUnixPath is Fluentd's DEFAULT_SOCKET_PATH.
const defaultUnixPath = "/var/run/fluent/fluent.sock"

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "unix", Summary: "receive events over the Forward protocol on a unix socket (FireLens)",
		New: func() any { return &Unix{Path: defaultUnixPath} }})
}

// Configure implements plugin.Configurer.
func (u *Unix) Configure(c *plugin.Context) error {
	if u.Path == "" {
		return fmt.Errorf("path is empty")
	}
	u.in = &Input{Tag: u.Tag, ChunkSizeLimit: defaultChunkSizeLimit, AckDedupSize: 65536, AckDedupTTL: defaultAckDedupTTL,
		MaxDecompressedSize: defaultChunkSizeLimit, HandshakeTimeout: defaultHandshakeTimeout, ReceiveBufferLimit: defaultReceiveBufferLimit}
	return u.in.Configure(c)
}

// MemoryBound implements plugin.MemoryBounded.
func (u *Unix) MemoryBound() int64 { return u.in.MemoryBound() }

// Measure implements plugin.Measured: in_forward's counters.
func (u *Unix) Measure(report plugin.Report) { u.in.Measure(report) }

// Init binds the socket. A stale socket (a crash left it) is removed
// first; a regular file or directory at the path is never touched.
func (u *Unix) Init(context.Context) error {
	if fi, err := os.Lstat(u.Path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fmt.Errorf("%s exists and is not a socket", u.Path)
		}
		if c, err := net.Dial("unix", u.Path); err == nil {
			c.Close()
			return fmt.Errorf("%s: another process is listening on it", u.Path)
		}
		if err := os.Remove(u.Path); err != nil {
			return fmt.Errorf("removing the stale socket: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
		return err
	}
	ln, err := net.Listen("unix", u.Path)
	if err != nil {
		return err
	}
	// Closing the listener removes the file (Go's default for a socket
	// it created, made explicit because Close relies on it).
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	u.in.ln = ln
	bound := u.Path
	u.in.bound.Store(&bound)
	return nil
}

// Run implements plugin.Input.
func (u *Unix) Run(ctx context.Context, out plugin.Emitter) error { return u.in.Run(ctx, out) }

// Close implements plugin.Closer: the listener goes, and with it the
// socket file.
func (u *Unix) Close(ctx context.Context) error { return u.in.Close(ctx) }

// BoundAddr returns the socket's path once bound.
func (u *Unix) BoundAddr() string { return u.in.BoundAddr() }
