//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// These tests talk to Sluice with clients that others wrote, each sending
// events with unique ids; every id must arrive exactly once, by content.
// scripts/test installs the Python client (Debian's python3-fluent-logger)
// and the Node.js client (fluent-logger from the npm registry) first.

const perClient = 200

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func requireAllOnce(t *testing.T, in *instance, tag string, want []string) {
	t.Helper()
	missing, dups := countByID(t, filepath.Join(in.Dir, "out", tag, "*.log"), want, 20*time.Second)
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("tag %s: %d of %d missing (first %v), %d duplicated (first %v)\n%s",
			tag, len(missing), len(want), first(missing), len(dups), first(dups), in.Logs())
	}
}

func first(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

func TestFluentLoggerGolangModes(t *testing.T) {
	port := freePort(t)
	in := startSluice(t, fileSinkConf(port, ""))
	defer in.Stop()
	modes := map[string]fluent.Config{
		"sync":      {},
		"subsecond": {SubSecondPrecision: true},
		"ack":       {RequestAck: true},
		"async":     {Async: true},
		"async-ack": {Async: true, RequestAck: true},
	}
	for name, cfg := range modes {
		t.Run(name, func(t *testing.T) {
			cfg.FluentHost, cfg.FluentPort = "127.0.0.1", port
			logger, err := fluent.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := ids("go-"+name, perClient)
			for _, id := range want {
				if err := logger.Post("golang."+name, map[string]string{"id": id, "log": "hello from go"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := logger.Close(); err != nil {
				t.Fatal(err)
			}
			requireAllOnce(t, in, "golang."+name, want)
		})
	}
}

func TestPythonFluentLogger(t *testing.T) {
	if _, err := exec.Command("/usr/bin/python3", "-c", "import fluent.sender").CombinedOutput(); err != nil {
		t.Fatalf("python3-fluent-logger is not installed (scripts/test installs it): %v", err)
	}
	port := freePort(t)
	in := startSluice(t, fileSinkConf(port, ""))
	defer in.Stop()
	script := `
import sys
from fluent import sender
port, prefix, count, nano = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
s = sender.FluentSender("py", host="127.0.0.1", port=int(port), nanosecond_precision=nano)
for i in range(count):
    if not s.emit(prefix, {"id": "%s-%d" % (prefix, i), "log": "hello from python"}):
        print(s.last_error, file=sys.stderr)
        sys.exit(1)
s.close()
`
	for _, nano := range []string{"0", "1"} {
		prefix := "nano" + nano
		out, err := exec.Command("/usr/bin/python3", "-c", script, strconv.Itoa(port), prefix, strconv.Itoa(perClient), nano).CombinedOutput()
		if err != nil {
			t.Fatalf("python client: %v\n%s", err, out)
		}
		requireAllOnce(t, in, "py."+prefix, ids(prefix, perClient))
	}
}

const nodeScript = `
const logger = require(process.env.NODE_MODULES_DIR + "/fluent-logger");
// With -e, the arguments follow the node binary directly.
const [port, mode, count, ack, label, sharedKey] = process.argv.slice(1).filter((a) => a !== "--");
const opts = {host: "127.0.0.1", port: Number(port), eventMode: mode, requireAckResponse: ack === "1",
              timeout: 5.0, reconnectInterval: 500, ackResponseTimeout: 10000};
if (sharedKey) opts.security = {clientHostname: "node-client", sharedKey: sharedKey};
const sender = logger.createFluentSender("node", opts);
sender.on("error", (e) => { console.error("error", e); process.exit(1); });
let pending = Number(count);
for (let i = 0; i < Number(count); i++) {
  sender.emit(label, {id: label + "-" + i, log: "hello from node"}, (err) => {
    if (err) { console.error(err); process.exit(1); }
    if (--pending === 0) sender.end(null, null, () => process.exit(0));
  });
}
setTimeout(() => { console.error("timed out with", pending, "events unconfirmed"); process.exit(2); }, 30000);
`

func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../.cache/npm/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fluent-logger")); err != nil {
		t.Fatalf("the npm fluent-logger client is not installed in %s (scripts/test installs it)", dir)
	}
	return dir
}

func runNode(t *testing.T, modules string, args ...string) {
	t.Helper()
	cmd := exec.Command("node", append([]string{"-e", nodeScript, "--"}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_MODULES_DIR="+modules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node client %v: %v\n%s", args, err, out)
	}
}

func TestNodeFluentLogger(t *testing.T) {
	modules := nodeModules(t)
	port := freePort(t)
	in := startSluice(t, fileSinkConf(port, ""))
	defer in.Stop()
	for _, mode := range []string{"Message", "PackedForward", "CompressedPackedForward"} {
		for _, ack := range []string{"0", "1"} {
			label := fmt.Sprintf("%s-ack%s", mode, ack)
			runNode(t, modules, strconv.Itoa(port), mode, strconv.Itoa(perClient), ack, label)
			requireAllOnce(t, in, "node."+label, ids(label, perClient))
		}
	}
}

func TestNodeFluentLoggerSharedKey(t *testing.T) {
	modules := nodeModules(t)
	port := freePort(t)
	in := startSluice(t, fileSinkConf(port, `
  <security>
    self_hostname sluice-test
    shared_key s3cr3t
  </security>`))
	defer in.Stop()
	runNode(t, modules, strconv.Itoa(port), "PackedForward", strconv.Itoa(perClient), "1", "secure", "s3cr3t")
	requireAllOnce(t, in, "node.secure", ids("secure", perClient))

	// A client with the wrong key is refused and delivers nothing.
	cmd := exec.Command("node", "-e", nodeScript, "--", strconv.Itoa(port), "Message", "1", "1", "intruder", "wrong")
	cmd.Env = append(os.Environ(), "NODE_MODULES_DIR="+modules)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("a client with the wrong shared key succeeded:\n%s", out)
	}
	if recs := jsonRecords(t, filepath.Join(in.Dir, "out", "node.intruder", "*.log")); len(recs) != 0 {
		t.Errorf("events from a refused client arrived: %v", recs)
	}
}
