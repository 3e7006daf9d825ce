package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// BenchmarkGroupConsume: kafka_group → null over b.N Docker-shaped JSON
// messages that kfake (in the same process, so its CPU is in the figures
// too) holds in 6 partitions. For profiles of the input's own path.
func BenchmarkGroupConsume(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "logs"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	value := []byte(`{"container_id":"6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c","container_name":"/ecs-service-2-apache-d492a08f9480c2fcca01","source":"stdout","log":"122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] \"POST /activate\" 200 19886"}`)
	for i := 0; i < b.N; i++ {
		prod.Produce(context.Background(), &kgo.Record{Topic: "logs", Value: value}, nil)
	}
	if err := prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	prod.Close()
	plugintest.Reset()
	e := plugintest.Build(b, fmt.Sprintf("<source>\n  @type kafka_group\n  brokers %s\n  consumer_group bench\n  topics logs\n</source>\n<match **>\n  @type null\n</match>\n", strings.Join(brokers, ",")))
	in := e.Inputs()[0].(plugin.Measured)
	records := func() (n int64) {
		in.Measure(func(name, _ string, v int64, _ bool) {
			if name == "kafka_records_total" {
				n = v
			}
		})
		return n
	}
	b.ResetTimer()
	stop := plugintest.Start(b, e)
	for records() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	stop()
}
