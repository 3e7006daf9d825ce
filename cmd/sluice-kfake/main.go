// Command sluice-kfake runs franz-go's kfake, an in-process Kafka cluster
// that speaks the Kafka wire protocol, as a server on loopback, for the
// integration tests and benchmarks of the Kafka plugins: no Apache Kafka
// can be installed on the machines Sluice is built on. It is a test tool,
// not a Kafka: nothing is replicated, and without -data-dir nothing
// survives a restart.
//
//	sluice-kfake -ports 19092,19093,19094 -topics logs:3,audit:1 [-data-dir DIR]
//
// It prints one line, "brokers HOST:PORT,...", once it listens, and stops
// on SIGTERM or SIGINT.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ports := flag.String("ports", "0", "comma-separated loopback ports, one broker each (0: any free port)")
	topics := flag.String("topics", "", "topics to create at start, name:partitions, comma-separated")
	dataDir := flag.String("data-dir", "", "keep the cluster's data here across restarts")
	maxMessage := flag.Int("message-max-bytes", 0, "the brokers' message.max.bytes (0: Kafka's default)")
	flag.Parse()
	var opts []kfake.Opt
	var ps []int
	for _, p := range strings.Split(*ports, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			fail(fmt.Errorf("-ports: %q is not a port", p))
		}
		ps = append(ps, n)
	}
	opts = append(opts, kfake.NumBrokers(len(ps)), kfake.Ports(ps...)) // kfake listens on 127.0.0.1 only
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		name, parts, ok := strings.Cut(t, ":")
		n, err := strconv.Atoi(parts)
		if !ok || err != nil || n < 1 {
			fail(fmt.Errorf("-topics: %q is not name:partitions", t))
		}
		opts = append(opts, kfake.SeedTopics(int32(n), name))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *maxMessage > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(*maxMessage)}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fail(err)
	}
	fmt.Println("brokers " + strings.Join(c.ListenAddrs(), ","))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sluice-kfake:", err)
	os.Exit(2)
}
