#!/bin/bash
# Seed 000's pipeline into a Firehose stand-in (docs/benchmarks.md, issue 20). Needs /tmp/sluice-loadgen.
# usage: bench/firehose-seed000.sh BINARY EVENTS MODE(packed|message)
set -e
bin=$1; n=$2; mode=$3
repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf /tmp/fb && mkdir -p /tmp/fb && cd /tmp/fb
/tmp/sluice-loadgen firehose-sink -listen 127.0.0.1:4573 > sink.log 2>&1 & sinkpid=$!
sleep 0.3
sed 's/^port  24224/port 24224\nbind 127.0.0.1/; s/^port 8888/port 18888/; s/^bind 0.0.0.0/bind 127.0.0.1/' "$repo/internal/engine/testdata/fargate-firehose.conf" > seed000.conf
AWS_ENDPOINT_URL_FIREHOSE=http://127.0.0.1:4573 AWS_REGION=us-west-2 AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=secret AWS_EC2_METADATA_DISABLED=true \
  $bin -c seed000.conf > sluice.log 2>&1 & pid=$!
sleep 1.5
if [ "$mode" = message ]; then args="-mode message -conns 8"; else args="-mode packed -conns 4 -batch 500 -ack"; fi
t0=$(date +%s.%N)
/tmp/sluice-loadgen send $args -tag frontend -events $n -pid $pid | head -1
want=$((n))
while :; do
  got=$(tail -1 sink.log | sed -n "s/^records=\([0-9]*\).*/\1/p")
  [ "${got:-0}" -ge $want ] && break
  sleep 0.2
done
t1=$(date +%s.%N)
read -r utime stime < <(awk '{print $14, $15}' /proc/$pid/stat)
tck=$(getconf CLK_TCK)
cpu=$(echo "($utime + $stime) / $tck" | bc -l)
rss=$(awk '/VmHWM/{print $2/1024}' /proc/$pid/status)
echo "$(basename $bin) $mode: $got records; end-to-end $(echo "$n / ($t1 - $t0)" | bc -l | cut -d. -f1) events/s, $(echo "$cpu / ($n/1000000)" | bc -l | cut -c1-4) CPU-s per M events, peak RSS ${rss%.*} MiB"
kill $pid; wait $pid 2>/dev/null || true
kill $sinkpid
