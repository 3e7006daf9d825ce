#!/bin/bash
# forward → memory buffer → kafka2 → Kafka (cmd/sluice-kfake, one broker), then kafka_group → file, then the
# reference forward → file buffer → file (bench/file-buffer.conf), one after the other on the same machine
# (docs/benchmarks.md, issue 22). Needs /tmp/sluice-loadgen and /tmp/sluice-kfake built from this tree.
# usage: bench/kafka.sh SLUICE_BINARY EVENTS
set -e
bin=$1; n=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/kafka-bench.XXXX); cd "$work"
cpu() { read -r u s < <(awk '{print $14, $15}' /proc/$1/stat); echo "($u + $s) / $(getconf CLK_TCK)" | bc -l; }
rss() { awk '/VmHWM/{print int($2/1024)}' /proc/$1/status; }
metric() { curl -s http://127.0.0.1:24231/metrics | awk -v m="$1" '$1 ~ "^"m {s += $2} END {printf "%d", s}'; }
report() { # name events seconds cpu rss
  echo "$1: $2 events in $(printf %.2f $3) s = $(echo "$2 / $3" | bc -l | cut -d. -f1) events/s, $(echo "$4 / ($2/1000000)" | bc -l | cut -c1-4) CPU-s per M events, peak RSS $5 MiB"
}
/tmp/sluice-kfake -ports 19092 -topics logs:6 > kfake.log 2>&1 & kpid=$!
trap 'kill $kpid 2>/dev/null' EXIT
sleep 0.5

cat > produce.conf <<CONF
<system>
  log_level warn
</system>
<source>
  @type forward
  bind 127.0.0.1
  port 24224
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 24231
</source>
<match **>
  @type kafka2
  brokers 127.0.0.1:19092
  default_topic logs
  <buffer>
    flush_interval 1s
    flush_thread_count 2
    chunk_limit_size 1m
    total_limit_size 1g
    overflow_action block
  </buffer>
</match>
CONF
$bin -c produce.conf > produce.log 2>&1 & pid=$!
sleep 1
t0=$(date +%s.%N)
/tmp/sluice-loadgen send -mode packed -conns 4 -batch 500 -ack -tag app -events $n > /dev/null
want=$((n + 4)) # and each connection's final marker
until [ "$(metric sluice_output_kafka_messages_total)" -ge $want ]; do sleep 0.1; done
t1=$(date +%s.%N)
report "forward → memory buffer → kafka2" $n "$(echo "$t1 - $t0" | bc -l)" "$(cpu $pid)" "$(rss $pid)"
kill $pid; wait $pid 2>/dev/null || true

cat > consume.conf <<CONF
<system>
  log_level warn
</system>
<source>
  @type kafka_group
  brokers 127.0.0.1:19092
  consumer_group bench
  topics logs
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port 24231
</source>
<match logs>
  @type file
  path ./consumed/events
  append true
  <format>
    @type json
  </format>
  <buffer time>
    timekey 1h
    timekey_wait 0
    flush_mode interval
    flush_interval 1s
    chunk_limit_size 8m
    total_limit_size 1g
    overflow_action block
  </buffer>
</match>
CONF
t0=$(date +%s.%N)
$bin -c consume.conf > consume.log 2>&1 & pid=$!
until [ "$(cat consumed/* 2>/dev/null | wc -l)" -ge $want ]; do sleep 0.1; done
t1=$(date +%s.%N)
report "kafka_group → file (start to last line written)" $n "$(echo "$t1 - $t0" | bc -l)" "$(cpu $pid)" "$(rss $pid)"
kill $pid; wait $pid 2>/dev/null || true

mkdir ref && cd ref
cp "$repo/bench/file-buffer.conf" file.conf
$bin -c file.conf > file.log 2>&1 & pid=$!
sleep 1
t0=$(date +%s.%N)
/tmp/sluice-loadgen send -mode packed -conns 4 -batch 500 -ack -tag app -events $n > /dev/null
until [ "$(cat out/app/* 2>/dev/null | wc -l)" -ge $want ]; do sleep 0.1; done
t1=$(date +%s.%N)
report "reference: forward → file buffer → file" $n "$(echo "$t1 - $t0" | bc -l)" "$(cpu $pid)" "$(rss $pid)"
kill $pid; wait $pid 2>/dev/null || true
cd /; rm -rf "$work"
