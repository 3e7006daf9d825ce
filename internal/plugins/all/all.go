// Package all links every built-in plugin into the binary.
package all

import (
	_ "github.com/sluice-log/sluice/internal/formatter"             // formatters
	_ "github.com/sluice-log/sluice/internal/plugins/core"          // null, stdout, copy, relabel
	_ "github.com/sluice-log/sluice/internal/plugins/elasticsearch" // elasticsearch, opensearch and their data streams
	_ "github.com/sluice-log/sluice/internal/plugins/file"          // file output
	_ "github.com/sluice-log/sluice/internal/plugins/forward"       // forward input and output
	_ "github.com/sluice-log/sluice/internal/plugins/httpio"        // http input
	_ "github.com/sluice-log/sluice/internal/plugins/httpout"       // http, loki, splunk_hec, datadog, cloudwatch_logs
	_ "github.com/sluice-log/sluice/internal/plugins/kafka"         // kafka2 (rdkafka2)
	_ "github.com/sluice-log/sluice/internal/plugins/kinesis"       // kinesis_firehose, kinesis_streams
	_ "github.com/sluice-log/sluice/internal/plugins/netin"         // tcp, udp, syslog
	_ "github.com/sluice-log/sluice/internal/plugins/prometheus"    // prometheus sources
	_ "github.com/sluice-log/sluice/internal/plugins/s3"            // s3 output
	_ "github.com/sluice-log/sluice/internal/plugins/sample"        // sample input
	_ "github.com/sluice-log/sluice/internal/plugins/tail"          // tail
	_ "github.com/sluice-log/sluice/internal/plugins/transform"     // grep, record_transformer
)
