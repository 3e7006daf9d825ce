#!/bin/bash
# forward (PackedForward, acks) → memory buffer → each HTTP output → `sluice-loadgen api-sink`, and the reference
# forward → memory buffer → file, one after the other on the same machine (docs/benchmarks.md, issue 23).
# The api-sink answers as each service does on success and only counts records in the bodies, so the cost
# measured is Sluice's. Needs /tmp/sluice-loadgen built from this tree.
# usage: bench/http-outputs.sh SLUICE_BINARY EVENTS [DESTINATION ...]
#   destinations: file http http_gzip loki loki_snappy splunk_hec datadog cloudwatch_logs (default: all)
#   KEEP=1 keeps the work directory (configurations, logs, the sink's counts) for a look afterwards
set -e
bin=$1; n=$2; shift 2
dests=${*:-file http http_gzip loki loki_snappy splunk_hec datadog cloudwatch_logs}
conns=4
want=$((n + conns)) # and each connection's final marker
work=$(mktemp -d /tmp/http-outputs.XXXX); cd "$work"
cpu() { read -r u s < <(awk '{print $14, $15}' /proc/$1/stat); echo "($u + $s) / $(getconf CLK_TCK)" | bc -l; }
rss() { awk '/VmHWM/{print int($2/1024)}' /proc/$1/status; }
/tmp/sluice-loadgen api-sink -listen 127.0.0.1:18080 > sink.log 2>&1 & sinkpid=$!
trap 'kill $sinkpid 2>/dev/null; [ -n "$KEEP" ] || { cd /; rm -rf "$work"; }' EXIT
sleep 0.3
sink=http://127.0.0.1:18080

output() {
  case $1 in
  # out_file chunks by time (a day) unless told otherwise; flush_mode interval below flushes all alike.
  file) printf '@type file\n  path ./out/events\n  append true\n  <format>\n    @type json\n  </format>' ;;
  http) printf '@type http\n  endpoint %s/ingest\n  retryable_response_codes [503]' $sink ;;
  http_gzip) printf '@type http\n  endpoint %s/ingest\n  compress gzip\n  retryable_response_codes [503]' $sink ;;
  loki) printf '@type loki\n  url %s\n  <label>\n    container_name\n  </label>' $sink ;;
  loki_snappy) printf '@type loki\n  url %s\n  compress snappy\n  <label>\n    container_name\n  </label>' $sink ;;
  splunk_hec) printf '@type splunk_hec\n  protocol http\n  hec_host 127.0.0.1\n  hec_port 18080\n  hec_token bench' ;;
  datadog) printf '@type datadog\n  api_key bench\n  use_ssl false\n  host 127.0.0.1\n  port 18080' ;;
  cloudwatch_logs) printf '@type cloudwatch_logs\n  region us-east-1\n  endpoint %s\n  aws_key_id AKIDBENCH\n  aws_sec_key bench\n  log_group_name g\n  log_stream_name s' $sink ;;
  *) echo "unknown destination $1" >&2; exit 2 ;;
  esac
}

# seen: what the destination holds so far.
seen() {
  if [ "$1" = file ]; then cat out/* 2>/dev/null | wc -l; return; fi
  tail -1 sink.log | sed -n 's/^records=\([0-9]*\).*/\1/p'
}

for d in $dests; do
  rm -rf out
  kill $sinkpid; wait $sinkpid 2>/dev/null || true # a fresh count for each destination
  /tmp/sluice-loadgen api-sink -listen 127.0.0.1:18080 > sink.log 2>&1 & sinkpid=$!
  sleep 0.3
  cat > $d.conf <<CONF
<system>
  log_level warn
</system>
<source>
  @type forward
  bind 127.0.0.1
  port 24224
</source>
<match **>
  $(output $d)
  <buffer>
    flush_mode interval
    flush_interval 1s
    flush_thread_count 2
    chunk_limit_size 1m
    total_limit_size 1g
    overflow_action block
  </buffer>
</match>
CONF
  "$bin" -c $d.conf > $d.log 2>&1 & pid=$!
  sleep 1
  t0=$(date +%s.%N)
  /tmp/sluice-loadgen send -mode packed -conns $conns -batch 500 -ack -tag app -events "$n" > /dev/null
  # Bounded: a destination that stops short is reported, not waited for forever.
  for _ in $(seq 1200); do
    [ "$(seen $d)" -ge $want ] 2>/dev/null && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  got=$(seen $d); c=$(cpu $pid); r=$(rss $pid)
  secs=$(echo "$t1 - $t0" | bc -l)
  echo "$d: ${got:-0} of $want records in $(printf %.2f "$secs") s = $(echo "$n / $secs" | bc -l | cut -d. -f1) events/s, $(echo "$c / ($n/1000000)" | bc -l | cut -c1-4) CPU-s per M events, peak RSS $r MiB"
  kill $pid; wait $pid 2>/dev/null || true
done
