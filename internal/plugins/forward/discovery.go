package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sluice-log/sluice/internal/config"
)

// Fluentd's <service_discovery> (out_forward): where the servers come
// from besides <server>. static lists them as <service> sections; file
// reads a YAML or JSON list and rereads it when it changes; srv asks DNS
// for the SRV records of a service (a Kubernetes headless Service, Consul)
// every interval. A list that changes keeps the state (failures, kept
// connections) of the servers still on it.

// StaticDiscovery is <service_discovery> @type static.
type StaticDiscovery struct {
	Services []ServerConfig `section:"service" desc:"static: A server, with the parameters of <server>."`
}

// FileDiscovery is <service_discovery> @type file.
type FileDiscovery struct {
	Path         string `conf:"path,required" desc:"file: A YAML (.yml, .yaml) or JSON file: a list of servers with host, port, name, weight, standby, shared_key, username, password. It is reread when it changes."`
	ConfEncoding string `conf:"conf_encoding" desc:"file: Accepted for Fluentd compatibility." ignored:"the file is read as UTF-8, a byte-order mark skipped"`
}

// SRVDiscovery is <service_discovery> @type srv.
type SRVDiscovery struct {
	Service       string        `conf:"service,required" desc:"srv: The service name of the SRV query (_service._proto.hostname)."`
	Proto         string        `conf:"proto" desc:"srv: The protocol name of the SRV query."`
	Hostname      string        `conf:"hostname,required" desc:"srv: The domain of the SRV query."`
	DNSServerHost string        `conf:"dns_server_host" desc:"srv: The DNS server to ask (host or host:port), instead of the system's."`
	Interval      time.Duration `conf:"interval" desc:"srv: How often the records are asked for again."`
	DNSLookup     bool          `conf:"dns_lookup" desc:"srv: Resolve each record's target to an address (true), or connect to the target name."`
	SharedKey     string        `conf:"shared_key" desc:"srv: The shared key of the <security> handshake with the servers found."`
	Username      string        `conf:"username" desc:"srv: The user of user authentication with the servers found."`
	Password      string        `conf:"password" desc:"srv: The password of username."`
}

// discoveryReference is every type's parameters together, with their
// defaults, for `sluice plugins forward`; each type decodes only its own.
type discoveryReference struct {
	Type string `conf:"@type" enum:"static,file,srv" desc:"Where the servers come from."`
	StaticDiscovery
	FileDiscovery
	SRVDiscovery
}

func newDiscoveryReference() any {
	return &discoveryReference{SRVDiscovery: SRVDiscovery{Proto: "tcp", Interval: 60 * time.Second, DNSLookup: true}}
}

// discoveryTypes are the @type values of <service_discovery>.
var discoveryTypes = []string{"static", "file", "srv"}

// discovery is one configured source of servers.
type discovery struct {
	static []ServerConfig
	file   *FileDiscovery
	srv    *SRVDiscovery
}

// fileCheckInterval is how often a file source's modification time is
// looked at (a variable for tests).
var fileCheckInterval = 5 * time.Second

func decodeDiscovery(el *config.Element) (discovery, error) {
	typ, _ := el.Get("@type")
	var d discovery
	switch typ {
	case "static":
		var s StaticDiscovery
		if err := config.Decode(el, &s); err != nil {
			return d, err
		}
		if len(s.Services) == 0 {
			return d, config.Errorf(el.Pos, "<service_discovery> static needs at least one <service>")
		}
		d.static = s.Services
	case "file":
		d.file = &FileDiscovery{}
		if err := config.Decode(el, d.file); err != nil {
			return d, err
		}
	case "srv":
		d.srv = &newDiscoveryReference().(*discoveryReference).SRVDiscovery
		if err := config.Decode(el, d.srv); err != nil {
			return d, err
		}
		if d.srv.Interval <= 0 {
			return d, config.Errorf(el.Pos, "<service_discovery> srv interval must be positive")
		}
	default:
		return d, config.Errorf(el.Pos, "<service_discovery> @type %q: want one of %s", typ, strings.Join(discoveryTypes, ", "))
	}
	return d, nil
}

// readServerFile reads a file source's servers.
func readServerFile(path string) ([]ServerConfig, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw = []byte(strings.TrimPrefix(string(raw), "\uFEFF"))
	type entry struct {
		Host      string `json:"host" yaml:"host"`
		Port      int    `json:"port" yaml:"port"`
		Name      string `json:"name" yaml:"name"`
		Weight    int    `json:"weight" yaml:"weight"`
		Standby   bool   `json:"standby" yaml:"standby"`
		SharedKey string `json:"shared_key" yaml:"shared_key"`
		Username  string `json:"username" yaml:"username"`
		Password  string `json:"password" yaml:"password"`
	}
	var entries []entry
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml":
		err = yaml.Unmarshal(raw, &entries)
	case ".json":
		err = json.Unmarshal(raw, &entries)
	default:
		return nil, fmt.Errorf("%s: want a .yml, .yaml or .json file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]ServerConfig, 0, len(entries))
	for i, e := range entries {
		if e.Host == "" {
			return nil, fmt.Errorf("%s: server %d has no host", path, i+1)
		}
		out = append(out, ServerConfig{Host: e.Host, Port: e.Port, Name: e.Name, Weight: e.Weight, Standby: e.Standby,
			SharedKey: e.SharedKey, Username: e.Username, Password: e.Password})
	}
	return out, nil
}

// lookupSRV asks for a srv source's records.
func lookupSRV(ctx context.Context, s *SRVDiscovery) ([]ServerConfig, error) {
	r := net.DefaultResolver
	if s.DNSServerHost != "" {
		server := s.DNSServerHost
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, records, err := r.LookupSRV(ctx, s.Service, s.Proto, s.Hostname)
	if err != nil {
		return nil, err
	}
	out := make([]ServerConfig, 0, len(records))
	for _, rec := range records {
		target := strings.TrimSuffix(rec.Target, ".")
		host := target
		if s.DNSLookup {
			addrs, err := r.LookupHost(ctx, target)
			if err != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("resolving %s: %w", target, err)
			}
			host = addrs[0]
		}
		out = append(out, ServerConfig{Host: host, Port: int(rec.Port), Name: target, Weight: int(rec.Weight),
			SharedKey: s.SharedKey, Username: s.Username, Password: s.Password})
	}
	return out, nil
}

// discover returns the servers of every source now.
func (o *Output) discover(ctx context.Context) ([]ServerConfig, error) {
	servers := slices.Clone(o.Servers)
	var errs []error
	for _, d := range o.discoveries {
		switch {
		case d.static != nil:
			servers = append(servers, d.static...)
		case d.file != nil:
			s, err := readServerFile(d.file.Path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			servers = append(servers, s...)
		case d.srv != nil:
			s, err := lookupSRV(ctx, d.srv)
			if err != nil {
				errs = append(errs, fmt.Errorf("SRV _%s._%s.%s: %w", d.srv.Service, d.srv.Proto, d.srv.Hostname, err))
				continue
			}
			servers = append(servers, s...)
		}
	}
	return servers, errors.Join(errs...)
}

// setServers replaces the node list with servers, keeping the node (and
// its state) of each server already on it and closing the kept
// connections of the ones gone.
func (o *Output) setServers(servers []ServerConfig) error {
	old := map[string]*node{}
	for _, n := range o.nodeList() {
		old[n.key()] = n
	}
	var next []*node
	for _, s := range servers {
		s, err := o.normalise(s)
		if err != nil {
			return err
		}
		n := &node{cfg: s, addr: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), available: true, phi: newPhi()}
		if prev, ok := old[n.key()]; ok {
			n = prev
			delete(old, n.key())
		}
		next = append(next, n)
	}
	o.nodes.Store(&next)
	for _, n := range old {
		n.closeIdle()
	}
	return nil
}

// watchDiscovery rereads the file and SRV sources while the output runs.
// A failed reread keeps the servers known; a list that comes back empty
// is kept out, since an empty list would stop every delivery.
func (o *Output) watchDiscovery() {
	defer o.wg.Done()
	every := o.fileCheck
	var files []string
	for _, d := range o.discoveries {
		if d.srv != nil {
			every = min(every, d.srv.Interval)
		}
		if d.file != nil {
			files = append(files, d.file.Path)
		}
	}
	mtimes := modTimes(files)
	lastSRV := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		now := modTimes(files)
		due := !maps.EqualFunc(now, mtimes, time.Time.Equal)
		for _, d := range o.discoveries {
			if d.srv != nil && time.Since(lastSRV) >= d.srv.Interval {
				due = true
			}
		}
		if !due {
			continue
		}
		mtimes, lastSRV = now, time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		servers, err := o.discover(ctx)
		cancel()
		if err != nil {
			o.log.Warn("service discovery failed; keeping the servers known", "err", err)
			continue
		}
		if len(servers) == 0 {
			o.log.Warn("service discovery found no server; keeping the servers known")
			continue
		}
		if err := o.setServers(servers); err != nil {
			o.log.Warn("service discovery found a bad server; keeping the servers known", "err", err)
			continue
		}
		o.log.Info("service discovery updated the servers", "servers", len(servers))
	}
}

func modTimes(paths []string) map[string]time.Time {
	m := make(map[string]time.Time, len(paths))
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil {
			m[p] = st.ModTime()
		}
	}
	return m
}
